# luasip: GNU make build.
#
#   make              build/lib/luasip/core.so (Lua module luasip.core) and
#                     build/libsipparse.a (the parser alone, built without Lua)
#   make test         install missing Debian packages (as root), build, run the
#                     C tests and the busted specs; last line:
#                     "luasip: N passed, N failed"
#   make test-asan    the same suite built with ASan+UBSan into build-asan/
#   make valgrind     the C tests under valgrind
#   make fuzz         libFuzzer on the parser for FUZZ_SECONDS (default 60)
#   make bench        parser throughput (luasip C and Lua vs sofia-sip, oSIP2),
#                     stateless OPTIONS CPU vs Kamailio, transactions/s and
#                     bytes per transaction, location store ops/s and bytes
#                     per binding (vs Kamailio usrloc)
#   make run          the registrar + proxy (examples/proxy.lua) on
#                     udp/tcp 127.0.0.1:5060, foreground, Ctrl-C stops it
#   make fresh-check  the README's `make run` and `make test` as root in a
#                     pristine Debian 12 root (mmdebstrap) holding only
#                     `git archive HEAD` (.ci/fresh-check)
#   make demo         the parser demo (the vectors and the bench corpus)
#   make lint         luacheck
#   make install      INST_LIBDIR=... INST_LUADIR=... INST_BINDIR=... (the
#                     rockspec uses it; bin/luasip goes to INST_BINDIR)
#
# Variables passed by luarocks (LUA_INCDIR, LIBUV_INCDIR, LIBUV_LIBDIR,
# OPENSSL_INCDIR, OPENSSL_LIBDIR) take precedence over pkg-config.

SHELL := /bin/bash
.DEFAULT_GOAL := all
.DELETE_ON_ERROR:
.SUFFIXES:

BUILD ?= build
# The torture vectors: the repository's own copy. ../shared is read by
# `make bench` alone (the Kamailio, sofia-sip and oSIP2 references).
VECTORS ?= spec/vectors
SHARED ?= ../shared
CORPUS ?= $(wildcard $(SHARED)/bench/parser/corpus/*.sip)
FUZZ_SECONDS ?= 60
BENCH_SECONDS ?= 2.5
# Label of the final summary line ("<name>: N passed, N failed").
SUMMARY_NAME ?= luasip

CC ?= cc
AR ?= ar
PKG_CONFIG ?= pkg-config
LUA ?= lua5.4
BUSTED ?= /usr/bin/busted
LUACHECK ?= luacheck
CLANG ?= clang
CLANG_FORMAT ?= clang-format
LDOC ?= ldoc
VALGRIND ?= valgrind

# Debian packages `make deps` installs (as root) when any is missing: the
# groups of deps/debian.txt, the one package list. `make run` needs the
# build group, `make test` also the test group; the CI-only tools and the
# bench references are installed by the targets that use them.
DEB_GROUPS ?= build test
DEB_PACKAGES = $(shell deps/packages.sh $(DEB_GROUPS))

# --- dependencies' flags ----------------------------------------------------
ifdef LUA_INCDIR
LUA_CFLAGS := -I$(LUA_INCDIR)
else
LUA_CFLAGS := $(shell $(PKG_CONFIG) --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
endif
ifdef LIBUV_INCDIR
UV_CFLAGS := -I$(LIBUV_INCDIR)
UV_LIBS := $(if $(LIBUV_LIBDIR),-L$(LIBUV_LIBDIR)) -luv
else
UV_CFLAGS := $(shell $(PKG_CONFIG) --cflags libuv 2>/dev/null)
UV_LIBS := $(shell $(PKG_CONFIG) --libs libuv 2>/dev/null || echo -luv)
endif
ifdef OPENSSL_INCDIR
SSL_CFLAGS := -I$(OPENSSL_INCDIR)
SSL_LIBS := $(if $(OPENSSL_LIBDIR),-L$(OPENSSL_LIBDIR)) -lssl -lcrypto
else
SSL_CFLAGS := $(shell $(PKG_CONFIG) --cflags openssl 2>/dev/null)
SSL_LIBS := $(shell $(PKG_CONFIG) --libs openssl 2>/dev/null || echo -lssl -lcrypto)
endif

# The location backends (csrc/location/redis.c, csrc/location/sqlite.c): hiredis and
# SQLite, linked into core.so and the C tests (HIREDIS_*DIR, SQLITE_*DIR from luarocks).
LOC_CFLAGS := $(if $(HIREDIS_INCDIR),-I$(HIREDIS_INCDIR)) $(if $(SQLITE_INCDIR),-I$(SQLITE_INCDIR))
LOC_LIBS := $(if $(HIREDIS_LIBDIR),-L$(HIREDIS_LIBDIR)) $(if $(SQLITE_LIBDIR),-L$(SQLITE_LIBDIR)) \
  $(or $(shell $(PKG_CONFIG) --libs hiredis sqlite3 2>/dev/null),-lhiredis -lsqlite3)

# The DNS resolver (csrc/dns): c-ares (CARES_*DIR from luarocks).
ifdef CARES_INCDIR
CARES_CFLAGS := -I$(CARES_INCDIR)
CARES_LIBS := $(if $(CARES_LIBDIR),-L$(CARES_LIBDIR)) -lcares
else
CARES_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcares 2>/dev/null)
CARES_LIBS := $(shell $(PKG_CONFIG) --libs libcares 2>/dev/null || echo -lcares)
endif

# --- flags ------------------------------------------------------------------
CFLAGS ?= -O2 -g
WARNFLAGS := -Wall -Wextra -Werror
BASE_CFLAGS := -std=c11 $(CFLAGS) $(WARNFLAGS) -fPIC \
  -Icsrc -Icsrc/parse -Icsrc/transport -Icsrc/txn -Icsrc/tu -Icsrc/runtime -Icsrc/proxy -Icsrc/registrar -Icsrc/dns -Icsrc/auth -Icsrc/sdp -Icsrc/dialog -Icsrc/location -MMD -MP
# -std=c11 hides POSIX declarations, and uv.h needs them: everything but the
# parser (pure C11) is compiled with _GNU_SOURCE, as libuv itself is. Files
# outside csrc/parse must not define _GNU_SOURCE themselves.
POSIX_CFLAGS := -D_GNU_SOURCE

# SAN=1: ASan + UBSan (make test-asan uses BUILD=build-asan SAN=1).
ifeq ($(SAN),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
  -fno-sanitize-recover=undefined
endif
BASE_CFLAGS += $(SAN_FLAGS)
BASE_LDFLAGS := $(LDFLAGS) $(SAN_FLAGS)

# --- sources ----------------------------------------------------------------
PARSE_SRC := $(sort $(wildcard csrc/parse/*.c csrc/sdp/*.c))
LUA_SRC := $(sort $(wildcard csrc/lua/*.c))
CORE_SRC := $(sort $(wildcard csrc/transport/*.c csrc/txn/*.c csrc/tu/*.c csrc/runtime/*.c csrc/proxy/*.c \
  csrc/registrar/*.c csrc/dns/*.c csrc/auth/*.c csrc/dialog/*.c csrc/location/*.c))
# C tests: csrc/test/test_*.c, and each layer's own csrc/<layer>/tests/*_test.c
TEST_SRC := $(sort $(wildcard csrc/test/test_*.c)) \
  $(sort $(wildcard csrc/*/tests/*_test.c))
TEST_TIMEOUT ?= 300

OBJ := $(BUILD)/obj
PARSE_OBJ := $(PARSE_SRC:%.c=$(OBJ)/%.o)
LUA_OBJ := $(LUA_SRC:%.c=$(OBJ)/%.o)
CORE_OBJ := $(CORE_SRC:%.c=$(OBJ)/%.o)
TEST_BIN := $(addprefix $(BUILD)/test/,$(basename $(notdir $(TEST_SRC))))
vpath %.c $(sort $(dir $(TEST_SRC)))

CORE_SO := $(BUILD)/lib/luasip/core.so
PARSE_LIB := $(BUILD)/libsipparse.a
CORE_LIB := $(BUILD)/libsipcore.a
TEST_LIBS := $(if $(CORE_OBJ),$(CORE_LIB)) $(PARSE_LIB)

# --- build ------------------------------------------------------------------
.PHONY: all
all: $(CORE_SO) $(PARSE_LIB)

# The parser sees no Lua, libuv or OpenSSL headers.
$(OBJ)/csrc/parse/%.o: csrc/parse/%.c Makefile
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -c $< -o $@

# Bindings: the only files that see lua.h.
$(OBJ)/csrc/lua/%.o: csrc/lua/%.c Makefile
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(POSIX_CFLAGS) $(LUA_CFLAGS) $(UV_CFLAGS) $(SSL_CFLAGS) $(CARES_CFLAGS) $(LOC_CFLAGS) -c $< -o $@

# transport, txn, core, location: libuv, OpenSSL, hiredis/SQLite, no Lua.
$(OBJ)/csrc/%.o: csrc/%.c Makefile
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(POSIX_CFLAGS) $(UV_CFLAGS) $(SSL_CFLAGS) $(CARES_CFLAGS) $(LOC_CFLAGS) -c $< -o $@

$(PARSE_LIB): $(PARSE_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	$(AR) rcs $@ $^

$(CORE_LIB): $(CORE_OBJ)
	@mkdir -p $(@D)
	@rm -f $@
	$(AR) rcs $@ $^

# Lua symbols stay undefined: the interpreter provides them.
$(CORE_SO): $(LUA_OBJ) $(CORE_OBJ) $(PARSE_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared $(BASE_LDFLAGS) -o $@ $^ $(UV_LIBS) $(SSL_LIBS) $(LOC_LIBS) $(CARES_LIBS)

# C tests link the static libraries, never Lua.
$(BUILD)/test/%: %.c $(TEST_LIBS) Makefile
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(POSIX_CFLAGS) -DLUASIP_VECTORS_DIR='"$(abspath $(VECTORS))"' \
	  $(UV_CFLAGS) $(SSL_CFLAGS) $(CARES_CFLAGS) -o $@ $< $(TEST_LIBS) $(BASE_LDFLAGS) \
	  $(UV_LIBS) $(SSL_LIBS) $(CARES_LIBS) $(LOC_LIBS)

.PHONY: ctests
ctests: $(TEST_BIN)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# --- packages ---------------------------------------------------------------
.PHONY: deps
deps:
	@missing=$$(deps/missing.sh $(DEB_GROUPS)); rc=$$?; \
	if [ $$rc = 2 ]; then \
	  echo "deps: not a Debian system; need: $(DEB_PACKAGES)"; exit 0; \
	elif [ $$rc != 0 ]; then exit $$rc; fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing </dev/null; \
	else \
	  echo "deps: missing Debian packages; run as root: apt-get install -y $$missing"; \
	fi

# --- tests ------------------------------------------------------------------
# Each suite step prints "<name>: N passed, N failed"; spec/support/summary.sh
# sums them into the one final line.
TEST_LOG = $(BUILD)/test.log
TEST_ENV = LUASIP_VECTORS='$(abspath $(VECTORS))'
ifeq ($(SAN),1)
TEST_ENV += ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
BUSTED_ENV = LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
endif
BUSTED_ENV += LUA_PATH='lua/?.lua;lua/?/init.lua;;' \
  LUA_CPATH='$(BUILD)/lib/?.so;;' LUASIP_VECTORS='$(abspath $(VECTORS))'
BUSTED_ARGS = --ignore-lua -o plainTerminal --lpath='lua/?.lua;lua/?/init.lua' \
  --cpath='$(BUILD)/lib/?.so'
# Specs tagged #glibc_malloc measure what glibc's allocator gives back
# (RSS after malloc_trim); ASan replaces that allocator, so SAN=1 leaves
# them out (they run in the plain build), as it leaves out the load suites.
ifeq ($(SAN),1)
BUSTED_ARGS += --exclude-tags=glibc_malloc
endif
# SIPp with 10% loss both ways against transactions (spec/sipp/txn_loss.sh,
# "sipp-txn"; plain build only, about 40 s). SIPp registration scenarios
# against examples/registrar.lua (spec/sipp/reg.sh, "sipp-reg"; plain build
# only, about 7 s).
# The proxy against SIPp UACs/UASes in its own loopback-only namespace
# (spec/sipp/proxy_sipp.sh, "sipp-proxy", about 15 s).
# Network tests (spec/netns/run.sh): the torture vectors over UDP and TCP
# ("vectors-net") and SIPp OPTIONS ("sipp-options") against
# examples/stateless200.lua, in a loopback-only network namespace (needs
# root; otherwise one failure). Under SAN=1 the server gets the ASan
# runtime preloaded, as busted does.
NETNS_ENV = BUILD=$(BUILD) LUA=$(LUA) \
  $(if $(filter 1,$(SAN)),LUASIP_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)

.PHONY: test test-asan check
test: DEB_GROUPS = build test
test: deps
	@$(MAKE) --no-print-directory check

test-asan: DEB_GROUPS = build test
test-asan: deps
	@$(MAKE) --no-print-directory check BUILD=build-asan SAN=1

# The suite without the package step (BUILD/SAN select the flavour).
check: all ctests
	@mkdir -p $(BUILD); : > $(TEST_LOG); \
	for t in $(TEST_BIN); do \
	  $(TEST_ENV) spec/support/ctest.sh $$(basename $$t) \
	    timeout -k 10 $(TEST_TIMEOUT) $$t 2>&1 | tee -a $(TEST_LOG); \
	done; \
	$(BUSTED_ENV) spec/support/busted.sh $(LUA) $(BUSTED) $(BUSTED_ARGS) 2>&1 \
	  | tee -a $(TEST_LOG); \
	$(NETNS_ENV) spec/netns/run.sh 2>&1 | tee -a $(TEST_LOG); \
	$(NETNS_ENV) spec/sipp/proxy_sipp.sh 2>&1 | tee -a $(TEST_LOG); \
	$(NETNS_ENV) spec/sipp/ua_sipp.sh 2>&1 | tee -a $(TEST_LOG); \
	$(NETNS_ENV) spec/sipp/click2call_sipp.sh 2>&1 | tee -a $(TEST_LOG); \
	$(NETNS_ENV) spec/sipp/b2bua_sipp.sh 2>&1 | tee -a $(TEST_LOG); \
	$(NETNS_ENV) spec/netns/gruu.sh 2>&1 | tee -a $(TEST_LOG); \
	$(NETNS_ENV) spec/dns/run.sh 2>&1 | tee -a $(TEST_LOG); \
	$(if $(filter 1,$(SAN)),,BUILD=$(BUILD) LUA=$(LUA) spec/sipp/txn_loss.sh 2>&1 | tee -a $(TEST_LOG);) \
	$(if $(filter 1,$(SAN)),,BUILD=$(BUILD) LUA=$(LUA) spec/sipp/reg.sh 2>&1 | tee -a $(TEST_LOG);) \
	$(if $(filter 1,$(SAN)),,BUILD=$(BUILD) LUA=$(LUA) spec/baresip/run.sh 2>&1 | tee -a $(TEST_LOG);) \
	$(if $(filter 1,$(SAN)),,BUILD=$(BUILD) LUA=$(LUA) spec/netns/wire_load.sh 2>&1 | tee -a $(TEST_LOG);) \
	$(if $(filter 1,$(SAN)),,BUILD=$(BUILD) LUA=$(LUA) spec/sipp/auth_sipp.sh 2>&1 | tee -a $(TEST_LOG);) \
	$(if $(filter 1,$(SAN)),,BUILD=$(BUILD) LUA=$(LUA) spec/sipp/balancer_sipp.sh 2>&1 | tee -a $(TEST_LOG);) \
	$(if $(filter 1,$(SAN)),,$(MAKE) -s --no-print-directory browser-deps; BUILD=$(BUILD) LUA=$(LUA) spec/browser/run.sh 2>&1 | tee -a $(TEST_LOG);) \
	$(if $(filter 1,$(SAN)),,BUILD=$(BUILD) LUA=$(LUA) spec/netns/flood.sh 2>&1 | tee -a $(TEST_LOG); BUILD=$(BUILD) LUA=$(LUA) spec/sipp/bruteforce.sh 2>&1 | tee -a $(TEST_LOG); BUILD=$(BUILD) LUA=$(LUA) spec/netns/conn_slots.sh 2>&1 | tee -a $(TEST_LOG);) \
	spec/support/summary.sh $(SUMMARY_NAME) $(TEST_LOG)

# The browser test's npm packages (spec/browser/package.json, pinned by its
# package-lock.json) into $(BUILD)/npm, never a browser (Debian's chromium
# is used), and JsSIP bundled for the demo page into examples/webphone/lib/
# (ignored by git).
NPM ?= npm
NPM_DIR = $(BUILD)/npm
.PHONY: browser-deps webphone-deps
browser-deps webphone-deps: examples/webphone/lib/jssip.min.js
$(NPM_DIR)/.installed: spec/browser/package.json spec/browser/package-lock.json
	@mkdir -p $(NPM_DIR)
	cp spec/browser/package.json spec/browser/package-lock.json $(NPM_DIR)/
	cd $(NPM_DIR) && PUPPETEER_SKIP_DOWNLOAD=1 $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@
examples/webphone/lib/jssip.min.js: $(NPM_DIR)/.installed
	@mkdir -p $(@D)
	$(NPM_DIR)/node_modules/.bin/esbuild $(NPM_DIR)/node_modules/jssip/lib-es5/JsSIP.js --bundle \
	  --minify --platform=browser --format=iife --global-name=JsSIP --log-level=warning --outfile=$@

.PHONY: valgrind check-valgrind
valgrind: DEB_GROUPS = build ci
valgrind: deps
	@$(MAKE) --no-print-directory check-valgrind

check-valgrind: ctests
	@mkdir -p $(BUILD); log=$(BUILD)/valgrind.log; : > $$log; \
	for t in $(TEST_BIN); do \
	  $(TEST_ENV) spec/support/ctest.sh $$(basename $$t)-valgrind \
	    timeout -k 10 $$(($(TEST_TIMEOUT) * 2)) $(VALGRIND) -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=1 $$t 2>&1 | tee -a $$log; \
	done; \
	spec/support/summary.sh $(SUMMARY_NAME) $$log

# --- fuzzing ----------------------------------------------------------------
FUZZ_BUILD := build-fuzz
FUZZ_FLAGS := -std=c11 -O1 -g -Icsrc -Icsrc/parse -Icsrc/auth -Icsrc/sdp \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer
FUZZ_SEEDS := $(sort $(shell find $(VECTORS) -name '*.dat' 2>/dev/null)) \
  $(wildcard csrc/fuzz/seeds/*.sip)

$(FUZZ_BUILD)/fuzz_parse: csrc/fuzz/fuzz_parse.c $(PARSE_SRC) csrc/auth/redact.c
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $^

.PHONY: fuzz check-fuzz
fuzz: DEB_GROUPS = build ci
fuzz: deps
	@$(MAKE) --no-print-directory check-fuzz

check-fuzz: $(FUZZ_BUILD)/fuzz_parse
	@mkdir -p $(FUZZ_BUILD); \
	csrc/fuzz/run.sh $(FUZZ_BUILD)/fuzz_parse $(FUZZ_SECONDS) $(FUZZ_BUILD) \
	  $(FUZZ_SEEDS) 2>&1 | tee $(FUZZ_BUILD)/summary.log; \
	spec/support/summary.sh $(SUMMARY_NAME) $(FUZZ_BUILD)/summary.log

# --- lint -------------------------------------------------------------------
LINT_DIRS = $(wildcard lua spec examples csrc/bench bin/luasip)

.PHONY: lint format-check
lint: DEB_GROUPS = ci
lint: deps
	@mkdir -p $(BUILD); log=$(BUILD)/lint.log; \
	$(LUACHECK) --no-color $(LINT_DIRS) > $$log.raw 2>&1; rc=$$?; cat $$log.raw; \
	spec/support/lintsum.sh $$rc < $$log.raw > $$log; cat $$log; \
	spec/support/summary.sh $(SUMMARY_NAME) $$log

C_FORMAT_FILES = $(wildcard csrc/*/*.c csrc/*/*.h)
format-check:
	@if ! command -v $(CLANG_FORMAT) >/dev/null; then \
	  echo "format-check: $(CLANG_FORMAT) not installed (apt-get install clang-format)"; exit 0; fi; \
	$(CLANG_FORMAT) --dry-run --Werror $(C_FORMAT_FILES)

# --- API reference -----------------------------------------------------------
# The HTML reference of the Lua API, from the LDoc comments of lua/
# (config.ld), in $(BUILD)/doc/index.html. Every ldoc warning is shown and
# counted as a failure: "doc: 1 passed, 0 failed" when there is none.
.PHONY: doc
doc: DEB_GROUPS = ci
doc: deps
	@mkdir -p $(BUILD)/doc; log=$(BUILD)/doc.log; \
	$(LDOC) -c config.ld -d $(BUILD)/doc . > $$log.raw 2>&1; rc=$$?; \
	grep -v '^reading configuration from \|^output written to \|^format: using built-in' $$log.raw \
	  > $$log.warn; n=$$(wc -l < $$log.warn); cat $$log.warn; \
	if [ $$rc != 0 ] && [ $$n = 0 ]; then echo "doc: $(LDOC) exited $$rc"; n=1; fi; \
	if [ $$n = 0 ]; then echo "doc: $(BUILD)/doc/index.html"; echo "doc: 1 passed, 0 failed"; \
	else echo "doc: 0 passed, $$n failed"; fi > $$log; cat $$log; \
	spec/support/summary.sh $(SUMMARY_NAME) $$log

# --- benchmarks -------------------------------------------------------------
$(BUILD)/bench/bench_parse: csrc/bench/bench_parse.c $(PARSE_LIB)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(POSIX_CFLAGS) -o $@ $< $(PARSE_LIB) $(BASE_LDFLAGS)

$(BUILD)/bench/sofia_bench: $(SHARED)/bench/parser/sofia_bench.c
	@mkdir -p $(@D)
	gcc -O2 -o $@ $< $$($(PKG_CONFIG) --cflags --libs sofia-sip-ua)

$(BUILD)/bench/osip_bench: $(SHARED)/bench/parser/osip_bench.c
	@mkdir -p $(@D)
	gcc -O2 -o $@ $< $$($(PKG_CONFIG) --cflags --libs libosip2)

# The bench group of deps/debian.txt: sofia-sip, oSIP2 and Kamailio, the
# references measured in the same run. Without $(SHARED) (../shared: the
# SIPp harness, the Kamailio configuration, the parser references) the
# comparisons are skipped with one line each.
.PHONY: bench
bench: DEB_GROUPS = build test bench
bench: deps
	@if [ ! -d '$(SHARED)/bench' ]; then \
	  echo "bench: $(SHARED)/bench not found: every benchmark compares with its references there (SIPp harness, Kamailio, sofia-sip, oSIP2); skipped"; \
	  exit 0; fi; \
	$(MAKE) --no-print-directory bench-run

.PHONY: bench-run
bench-run:
	@$(MAKE) --no-print-directory all $(BUILD)/bench/bench_parse \
	  $(BUILD)/bench/sofia_bench $(BUILD)/bench/osip_bench
	@LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(BUILD)/lib/?.so;;' \
	  BUILD=$(BUILD) LUA=$(LUA) BENCH_SECONDS=$(BENCH_SECONDS) \
	  csrc/bench/run.sh $(CORPUS)
	@BUILD=$(BUILD) LUA=$(LUA) SHARED='$(SHARED)' csrc/bench/options_bench.sh
	@BUILD=$(BUILD) LUA=$(LUA) SHARED='$(SHARED)' csrc/bench/txn_bench.sh
	@BUILD=$(BUILD) LUA=$(LUA) SHARED='$(SHARED)' csrc/bench/location_bench.sh
	@BUILD=$(BUILD) LUA=$(LUA) SHARED='$(SHARED)' csrc/bench/reg_bench.sh
	@BUILD=$(BUILD) LUA=$(LUA) SHARED='$(SHARED)' csrc/bench/proxy_bench.sh
	@BUILD=$(BUILD) LUA=$(LUA) SHARED='$(SHARED)' csrc/bench/b2bua_bench.sh
	@BUILD=$(BUILD) LUA=$(LUA) csrc/bench/ua_bench.sh

# --- example ----------------------------------------------------------------
.PHONY: run
# The registrar + proxy on loopback, in the foreground until Ctrl-C
# (RUN_ARGS: more `luasip run` options, e.g. --trace or --location URL).
RUN_LISTEN ?= --listen udp:127.0.0.1:5060 --listen tcp:127.0.0.1:5060
RUN_ARGS ?=
run: DEB_GROUPS = build
run: deps
	@$(MAKE) --no-print-directory all
	LUASIP_BUILD=$(BUILD) $(LUA) bin/luasip run examples/proxy.lua $(RUN_LISTEN) $(RUN_ARGS)

# The parser demo: every torture vector and the bench corpus, parsed.
.PHONY: demo
demo: all
	LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(BUILD)/lib/?.so;;' \
	  timeout 120 $(LUA) examples/parse_demo.lua $(VECTORS) $(CORPUS)

# --- the fresh-machine check -------------------------------------------------
# The README's `make run` and `make test` as root in a pristine Debian 12
# root holding only `git archive HEAD` (commit first); CI runs it first.
.PHONY: fresh-check
fresh-check:
	@.ci/fresh-check

# --- install (luarocks "make" build type) -----------------------------------
INST_PREFIX ?= /usr/local
INST_LIBDIR ?= $(INST_PREFIX)/lib/lua/5.4
INST_LUADIR ?= $(INST_PREFIX)/share/lua/5.4
INST_BINDIR ?= $(INST_PREFIX)/bin
# luarocks installs (and wraps) bin/luasip itself: the rockspec sets 0.
INSTALL_BIN ?= 1

.PHONY: install
install: $(CORE_SO)
	install -d '$(INST_LIBDIR)/luasip'
	install -m 0755 $(CORE_SO) '$(INST_LIBDIR)/luasip/core.so'
	cd lua && find luasip -name '*.lua' | while read -r f; do \
	  install -D -m 0644 "$$f" '$(INST_LUADIR)'/"$$f" || exit 1; done
	$(if $(filter 1,$(INSTALL_BIN)),install -D -m 0755 bin/luasip '$(INST_BINDIR)/luasip')

# --- clean ------------------------------------------------------------------
.PHONY: clean
clean:
	rm -rf build build-asan $(FUZZ_BUILD)
