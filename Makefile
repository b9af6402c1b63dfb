# frugal — one Makefile, read top to bottom.
#
#   make                      build build/frugal (and build/libfrugal.a)
#   make test                 every test: unit, fuzz replay, CLI, the unit
#                             tests again under ASan+UBSan, a short fuzz run
#   make check                the quick part of make test (no sanitizer pass),
#                             the layering check (make layers) first
#   make server-test          black-box HTTP suites against build/frugal
#   make server-test-san      the same against the ASan+UBSan build
#   make soak                 the soak benchmark for SOAK_MINUTES (30):
#                             mixed clients, model churn, pressure swings
#                             (docs/SOAK.md; make test runs 2 minutes of it)
#   make soak-san             the same against the ASan+UBSan build
#   make fuzz                 libFuzzer targets in build/fuzz (clang)
#   make fuzz-smoke           run each of them for FUZZ_SECONDS (20)
#   make SAN=address,undefined  sanitizer build in build/san-address,undefined
#   make bench                benchmarks; writes docs/PERFORMANCE.md
#   make demo                 build, make a demo model, run it
#   make CC=aarch64-linux-gnu-gcc  cross-build for arm64 into build/aarch64/
#   make test-arm             that cross build's tests under qemu-user
#                             (cortex-a72, cortex-a76, max); part of make test
#   make bench-arm            frugal bench under qemu (works, not a speed)
#   make deb                  build/frugal_VERSION_ARCH.deb (packaging/; ARCH from $(CC))
#   make deb-test             install, serve, purge that package (root; tests/deb)
#
# Warnings are errors (WERROR=0 to relax while hacking).

CC       ?= cc
SAN      ?=
WERROR   ?= 1
OPT      ?= -O2
TESTDATA ?= $(abspath ../shared/testdata)

# ---- target architecture (issue 13) ----
# The compiler says what it builds for: x86_64 builds src/*/x86/, aarch64
# src/*/arm/ (never the other's).  A compiler for another architecture
# than this machine's (make CC=aarch64-linux-gnu-gcc on x86) is a cross
# build: it goes to build/<arch>/ beside the native build/ and takes the
# libraries of Debian's multiarch packages (libfoo-dev:arm64) through
# <triplet>-pkg-config when installed, else pkg-config pointed at
# /usr/lib/<triplet>/pkgconfig.
TRIPLET   := $(shell $(CC) -dumpmachine 2>/dev/null)
ARCH      := $(firstword $(subst -, ,$(TRIPLET)))
HOST_ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
ARCH_DIR  := x86
else ifeq ($(ARCH),aarch64)
ARCH_DIR  := arm
else
ARCH_DIR  := none
endif
ifeq ($(ARCH),$(HOST_ARCH))
CROSS     :=
PKG_CONFIG ?= pkg-config
else
CROSS     := $(ARCH)
ifneq ($(shell command -v $(TRIPLET)-pkg-config 2>/dev/null),)
PKG_CONFIG := $(TRIPLET)-pkg-config
else
PKG_CONFIG := PKG_CONFIG_LIBDIR=/usr/lib/$(TRIPLET)/pkgconfig:/usr/share/pkgconfig pkg-config
endif
endif

PKGS     := libpcre2-8 libutf8proc libmicrohttpd jansson inih sqlite3
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
            -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN     += -Werror
endif
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -fno-strict-aliasing -pthread $(WARN) -Isrc -Iinclude $(PKG_CFLAGS)
LDLIBS   := $(PKG_LIBS) -lm -lpthread
TEST_LIBS :=

BUILD_ROOT := build$(if $(CROSS),/$(CROSS))
ifneq ($(SAN),)
BUILD    := $(BUILD_ROOT)/san-$(SAN)
CFLAGS   += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SAN)
else
BUILD    := $(BUILD_ROOT)
endif

# Per-file instruction sets: the SIMD kernels of src/kernels/<arch>/ and
# src/search/<arch>/ are compiled for the ISA their name ends in and chosen
# at run time (kernels.c), so one binary runs on any CPU of its
# architecture.  x86: *_avx2.c, *_avx512.c.  arm: *_neon.c (plain
# ARMv8-A Advanced SIMD: Cortex-A72, Pi 4), *_dotprod.c (+ SDOT/UDOT and
# half-precision arithmetic: Cortex-A76, Pi 5), *_i8mm.c (+ SMMLA: Neoverse
# V1, Apple M); other files there take the baseline flags.
AVX2_FLAGS    := -mavx2 -mfma -mf16c
AVX512_FLAGS  := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq \
                 -mavx512vnni -mavx512bf16
NEON_FLAGS    := -march=armv8-a
DOTPROD_FLAGS := -march=armv8.2-a+dotprod+fp16
I8MM_FLAGS    := -march=armv8.2-a+dotprod+fp16+i8mm

LIB_SRC  := $(sort $(wildcard src/base/*.c src/kernels/*.c src/engine/*.c src/sched/*.c src/search/*.c \
                          src/manager/*.c src/server/*.c \
                          src/kernels/$(ARCH_DIR)/*.c src/search/$(ARCH_DIR)/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libfrugal.a
BIN      := $(BUILD)/frugal

UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
REPLAY_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/replay/%)

.PHONY: all test check layers unit replay cli-test san-test fuzz fuzz-smoke bench demo clean
all: $(BIN)

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_neon.o: %_neon.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(NEON_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_dotprod.o: %_dotprod.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DOTPROD_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%_i8mm.o: %_i8mm.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(I8MM_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/harness.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -MMD -MP $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) $(TEST_LIBS)

$(BUILD)/replay/%: tests/fuzz/%.c tests/fuzz/replay_main.c tests/fuzz/fuzz_http.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay_main.c $(LIB) $(LDLIBS)

# ---- tests ----
unit: $(UNIT_BIN) $(BIN)
	@FRUGAL_TESTDATA=$(TESTDATA) FRUGAL_BIN=$(abspath $(BIN)) scripts/run-tests.sh $(UNIT_BIN)

replay: $(REPLAY_BIN)
	@FRUGAL_TESTDATA=$(TESTDATA) scripts/replay-corpora.sh $(BUILD)/replay

cli-test: $(BIN)
	@FRUGAL_TESTDATA=$(TESTDATA) FRUGAL_BIN=$(abspath $(BIN)) tests/cli/run.sh

.PHONY: server-test server-test-san
server-test: $(BIN)
	@FRUGAL_TESTDATA=$(TESTDATA) FRUGAL_BIN=$(abspath $(BIN)) tests/server/run.sh

# The same black-box suites against the ASan+UBSan binary; a sanitizer
# report in any server's stderr fails them (tests/server/lib.sh, run.sh).
SAN_SERVER_BIN := build/san-address,undefined/frugal
server-test-san:
	@$(MAKE) --no-print-directory SAN=address,undefined OPT=-O1 $(SAN_SERVER_BIN)
	@FRUGAL_TESTDATA=$(TESTDATA) FRUGAL_BIN=$(CURDIR)/$(SAN_SERVER_BIN) FRUGAL_SAN=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  tests/server/run.sh

# The soak benchmark (tests/soak/run.sh, docs/SOAK.md): not in make test's
# suites but for a 2-minute run (scripts/test-all.sh).
SOAK_MINUTES ?= 30
.PHONY: soak soak-san
soak: $(BIN)
	@FRUGAL_TESTDATA=$(TESTDATA) FRUGAL_BIN=$(abspath $(BIN)) SOAK_MINUTES=$(SOAK_MINUTES) tests/soak/run.sh
soak-san:
	@$(MAKE) --no-print-directory SAN=address,undefined OPT=-O1 $(SAN_SERVER_BIN)
	@FRUGAL_TESTDATA=$(TESTDATA) FRUGAL_BIN=$(CURDIR)/$(SAN_SERVER_BIN) FRUGAL_SAN=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  SOAK_MINUTES=$(SOAK_MINUTES) tests/soak/run.sh

# ---- arm64 under emulation (issue 13) ----
# test-arm cross-builds build/aarch64/ (frugal, unit tests, replays) and
# runs them under qemu-user at -cpu cortex-a72, cortex-a76 and max, so
# each aarch64 kernel level (neon, dotprod, i8mm) runs its unit, golden
# and CLI tests (scripts/test-arm.sh says which and how long).  make test
# runs it on x86-64 hosts; on an aarch64 host make test runs natively.
# bins builds what the tests run, for whichever CC.
ARM_CC ?= aarch64-linux-gnu-gcc
.PHONY: bins test-arm bench-arm
bins: $(BIN) $(UNIT_BIN) $(REPLAY_BIN)
test-arm:
	@$(MAKE) --no-print-directory CC=$(ARM_CC) bins
	@FRUGAL_TESTDATA=$(TESTDATA) scripts/test-arm.sh

# frugal bench on the arm64 binary under qemu (-cpu cortex-a76, the Pi 5's
# core): shows that it runs; emulated speed says nothing about a real board
# (docs/PERFORMANCE.md, "Raspberry Pi 5").
bench-arm:
	@$(MAKE) --no-print-directory CC=$(ARM_CC) build/aarch64/frugal
	QEMU_LD_PREFIX=/ qemu-aarch64 -cpu cortex-a76 build/aarch64/frugal bench \
	  -m $(TESTDATA)/models/tiny-llama-q4_0.gguf -p 32 -n 16 -r 1 -t 2

# No file includes a header of a layer above its own or another module's
# *_int.h (ARCHITECTURE.md's layer order; scripts/check-layers.sh).
layers:
	@scripts/check-layers.sh

check: layers unit replay cli-test

san-test:
	$(MAKE) SAN=address,undefined OPT=-O1 unit replay

test:
	@MAKE="$(MAKE)" scripts/test-all.sh

# ---- fuzzing (clang + libFuzzer) ----
FUZZ_CC     ?= clang
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
               -Isrc -Iinclude $(PKG_CFLAGS)
FUZZ_BIN    := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
# The library is compiled once with coverage (fuzzer-no-link) and the
# sanitizers into build/fuzz-lib/libfrugal.a; each target links it.
FUZZ_LIB_CFLAGS := $(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(FUZZ_CFLAGS))
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build/fuzz-lib/%.o)
FUZZ_LIB    := build/fuzz-lib/libfrugal.a
fuzz: $(FUZZ_BIN)
fuzz-smoke: fuzz
	@FRUGAL_TESTDATA=$(TESTDATA) scripts/fuzz-smoke.sh
# x86: every file with the AVX-512 flags (as before); aarch64: baseline,
# the arm/ kernel files with their own -march.
FUZZ_ARCH_FLAGS := $(if $(filter x86,$(ARCH_DIR)),$(AVX512_FLAGS))
build/fuzz-lib/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) $(FUZZ_ARCH_FLAGS) -MMD -MP -c $< -o $@
build/fuzz-lib/%_neon.o: %_neon.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) $(NEON_FLAGS) -MMD -MP -c $< -o $@
build/fuzz-lib/%_dotprod.o: %_dotprod.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) $(DOTPROD_FLAGS) -MMD -MP -c $< -o $@
build/fuzz-lib/%_i8mm.o: %_i8mm.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_LIB_CFLAGS) $(I8MM_FLAGS) -MMD -MP -c $< -o $@
$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz_http.h $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_ARCH_FLAGS) $< $(FUZZ_LIB) -o $@ $(LDLIBS)

# ---- benchmarks and demo ----
bench: $(BIN)
	FRUGAL_TESTDATA=$(TESTDATA) scripts/bench.sh $(BIN)

demo: $(BIN)
	scripts/demo.sh $(BIN)

# ---- Debian package (packaging/mkdeb.sh; tests/deb/run.sh installs it) ----
# VERSION is the one source of the version.  DEB_ARCH follows the compiler's
# target, so `make deb CC=aarch64-linux-gnu-gcc` packages the cross build as
# arm64; DEB_BIN and DEB_ARCH may also be given outright.
FRUGAL_VERSION := $(shell cat VERSION)
DEB_ARCH ?= $(if $(filter aarch64,$(ARCH)),arm64,$(if $(filter x86_64,$(ARCH)),amd64,$(shell dpkg --print-architecture)))
DEB_BIN  ?= $(BIN)
DEB      := build/frugal_$(FRUGAL_VERSION)_$(DEB_ARCH).deb
.PHONY: deb deb-test
deb: $(DEB_BIN)
	packaging/mkdeb.sh $(DEB_BIN) $(DEB_ARCH) $(FRUGAL_VERSION) $(DEB)
# On x86 with the cross compiler, the arm64 package is built and inspected too.
DEB_CROSS_CC ?= aarch64-linux-gnu-gcc
deb-test: deb
	@if [ $(ARCH) = x86_64 ] && command -v $(DEB_CROSS_CC) >/dev/null; then \
	  $(MAKE) --no-print-directory deb CC=$(DEB_CROSS_CC) >/dev/null || exit 1; fi
	@FRUGAL_TESTDATA=$(TESTDATA) FRUGAL_DEB=$(abspath $(DEB)) \
	  FRUGAL_DEB_CROSS=$(if $(filter x86_64,$(ARCH)),$(abspath build/frugal_$(FRUGAL_VERSION)_arm64.deb)) \
	  tests/deb/run.sh

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
