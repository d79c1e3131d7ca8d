# ctxpack: one non-recursive Makefile.
#
#   make            build ./ctxpack
#   make check      install what is missing, build, run every test (also under ASan+UBSan)
#   make demo       install what is missing, build, run the main job on examples/monorepo
#   make bench      benchmarks (bench/README.md); make bench-quick for small trees
#   make fuzz       build the libFuzzer targets (clang)
#   make install    the binary, the man pages and the bash and zsh completions
#                   under $(DESTDIR)$(PREFIX) (PREFIX=/usr/local); make uninstall
#
# Variables: O=build dir (default build), SAN=1 for ASan+UBSan, CC, CFLAGS.

O ?= build
CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS = libarchive libzstd zlib libxxhash lmdb libcurl jansson

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN = -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
       -Wno-unused-parameter
ifeq ($(CI),true)
WARN += -Werror
endif
OPT ?= -O2 -g
ifeq ($(SAN),1)
# UBSan's checks end in a trap instruction, not in a call to libubsan:
# the same checks, without a second sanitizer runtime whose 6 MB of .bss
# LeakSanitizer scanned at every exit (an ASan process started and ended
# in 50 ms instead of 77).  ASAN_OPTIONS=handle_sigill=1 (scripts/run-tests)
# makes ASan report a failed check with a stack trace to its source line.
OPT = -O1 -g -fsanitize=address,undefined -fsanitize-undefined-trap-on-error \
      -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# not position-independent: the sanitizers' metadata makes ~60k relocations
# in a PIE, whose processing was a fifth of each ASan process's start (and
# make check starts a few thousand).  The runtimes stay shared: tests find
# an ASan build by its libasan (ldd), and LeakSanitizer's tracer crashed
# with a static runtime in a process that had loaded libcurl.
SANLD = -fsanitize=address -no-pie
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
# How the libraries are linked decides the start-up time (issue 15,
# docs/startup.md).  libcurl is not linked: src/registry/curl_dl.c loads it
# with dlopen when a command talks to a registry.  The others come from
# Debian's static libraries, with --gc-sections so that only the parts of
# libarchive in use are kept (its xar, zip and 7zip writers, and with them
# libxml2, ICU and libacl, are not).  STATIC=0 links them as shared
# libraries instead (for systems without the .a files).
STATIC ?= 1
ifeq ($(STATIC),1)
PKG_LIBS := -Wl,--gc-sections -Wl,-Bstatic -larchive -lbz2 -lz -lzstd -lxxhash \
	    -llmdb -ljansson -Wl,-Bdynamic
else
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(filter-out libcurl,$(PKGS)) 2>/dev/null)
endif
CFLAGS ?=
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(OPT) $(WARN) -Iinclude $(PKG_CFLAGS) -DCTXPACK_VERSION='"$(VERSION)"' \
	     -pthread -MMD -MP $(CFLAGS)
LDLIBS = $(PKG_LIBS) -pthread -lm
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

LIB_SRC := $(sort $(wildcard src/util/*.c src/pack/*.c src/index/*.c src/frames/*.c src/cache/*.c src/registry/*.c src/image/*.c)) \
	   $(sort $(filter-out src/cli/main.c,$(wildcard src/cli/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
LIB := $(O)/libctxpack.a
MAIN_OBJ := $(O)/src/cli/main.o

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(O)/unit/%)
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(O)/tools/%)

ifeq ($(O),build)
BIN := ctxpack
else
BIN := $(O)/ctxpack
endif

.PHONY: install uninstall man all deps check check-unit check-integ check-asan check-includes check-fuzz \
	demo bench bench-quick fuzz clean tools unit format

all: $(BIN)

$(BIN): $(MAIN_OBJ) $(LIB)
	$(CC) $(OPT) $(SANLD) -o $@ $(MAIN_OBJ) $(LIB) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(O)/unit/%: $(O)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(SANLD) -o $@ $< $(LIB) $(CMOCKA_LIBS) $(LDLIBS)

$(O)/tools/%: $(O)/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) $(SANLD) -o $@ $< $(LIB) $(LDLIBS)

unit: $(UNIT_BIN)
tools: $(TOOL_BIN)

deps:
	@scripts/install-deps

# Everything: plain build, then the same tests on an ASan+UBSan build.
# The builds use every CPU unless make was given -j; the man pages are
# made here so that the install tests running at once find them made.
CHECK_J = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 2))
check: deps
	@$(MAKE) --no-print-directory check-includes
	@$(MAKE) --no-print-directory $(CHECK_J) all unit tools man
	@$(MAKE) --no-print-directory $(CHECK_J) O=build/asan SAN=1 all unit tools
	@$(MAKE) --no-print-directory $(CHECK_J) fuzz-replay-build
	@scripts/run-tests

check-unit: all unit tools
	@scripts/run-tests unit

check-integ: all unit tools
	@scripts/run-tests integ

# Each external library is included by one module only (docs/STYLE.md).
check-includes:
	@scripts/check-includes

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo

bench:
	@scripts/install-deps --bench
	@$(MAKE) --no-print-directory all
	@bench/run

bench-quick:
	@scripts/install-deps --bench
	@$(MAKE) --no-print-directory all
	@bench/run --quick

# libFuzzer targets (clang); the replay driver is built with the normal
# compiler and re-runs fuzz/corpus/<target>/ in make check.
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)
REPLAY_BIN := $(FUZZ_SRC:fuzz/%.c=build/replay/%)

fuzz: $(FUZZ_BIN)
FUZZ_LIB_SRC := $(filter-out src/cli/%,$(LIB_SRC))
build/fuzz/%: fuzz/%.c $(FUZZ_LIB_SRC)
	@mkdir -p $(dir $@)
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) \
	    -DCTXPACK_VERSION='"$(VERSION)"' -o $@ $< $(FUZZ_LIB_SRC) $(LDLIBS)

fuzz-replay-build: $(REPLAY_BIN)
build/replay/%: fuzz/%.c fuzz/replay.c build/asan/libctxpack.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -g -O1 -fsanitize=address,undefined -fsanitize-undefined-trap-on-error \
	    -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) -no-pie \
	    -o $@ $< fuzz/replay.c build/asan/libctxpack.a $(LDLIBS)

# Installation.  The man pages (man/*.1, plain man(7)) get the version
# from VERSION; a Debian package sets PREFIX=/usr and
# ZSHCOMPDIR=/usr/share/zsh/vendor-completions.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
INSTALL ?= install
MAN_SRC := $(sort $(wildcard man/*.1))
MAN_OUT := $(MAN_SRC:man/%=$(O)/man/%)
MAN_INST := $(MAN_SRC:man/%=$(DESTDIR)$(MANDIR)/man1/%)

man: $(MAN_OUT)
$(O)/man/%.1: man/%.1 VERSION
	@mkdir -p $(dir $@)
	sed 's/@VERSION@/$(VERSION)/g' $< > $@.tmp && mv $@.tmp $@

install: $(BIN) man
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	$(INSTALL) -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/ctxpack
	$(INSTALL) -m 0644 $(MAN_OUT) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 completions/ctxpack.bash $(DESTDIR)$(BASHCOMPDIR)/ctxpack
	$(INSTALL) -m 0644 completions/_ctxpack $(DESTDIR)$(ZSHCOMPDIR)/_ctxpack

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/ctxpack $(MAN_INST) \
		$(DESTDIR)$(BASHCOMPDIR)/ctxpack $(DESTDIR)$(ZSHCOMPDIR)/_ctxpack

# Formats the lines changed since HEAD (staged or not) with .clang-format;
# the tree as written is the style, so nothing else is restyled.
# FILES=... formats whole files instead.
format:
ifdef FILES
	clang-format -i $(FILES)
else
	git clang-format --force --extensions c,h HEAD -- src include tests/unit fuzz
endif

clean:
	rm -rf build ctxpack

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_SRC:tests/unit/%.c=$(O)/tests/unit/%.d)
