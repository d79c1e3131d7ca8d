#include "ctxpack/walk.h"
