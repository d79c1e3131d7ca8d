#include "ctxpack/ignore.h"
