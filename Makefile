# rhash: build the module, run the demo, the tests and the benchmarks.
#
#   make          build the module lisp/rhash-module.so (.dylib, .dll: what
#                 `(require 'rhash)' looks for on this OS), release, and
#                 byte-compile lisp/rhash.el and lisp/rhash-fallback.el
#                 with $(EMACS)
#   make demo     build, then show rhash at work in batch Emacs
#   make test     cargo tests + ERT suites on every Emacs found (27, 28, 30),
#                 each on the direct path, the official one and the Lisp
#                 fallback; the last line sums them all up
#   make lint     clippy, byte-compiler warnings, checkdoc, package-lint
#   make bench    rhash vs built-in tables, ratios per row
#   make emacs30  unpack Emacs 30.1 from Debian bookworm-backports beside 28.2
#   make emacs27  unpack Emacs 27.1 from Debian bullseye beside 28.2
#
# Needs cargo (Rust 1.87+; get it with rustup, https://rustup.rs) and, for
# everything but the module, Emacs (EMACS, default `emacs').

EMACS   ?= emacs
# cargo on PATH, else rustup's default place.
CARGO   ?= $(or $(shell command -v cargo 2>/dev/null),$(wildcard $(HOME)/.cargo/bin/cargo),cargo)
EMACS30_PREFIX ?= $(HOME)/.cache/rhash/emacs30
EMACS27_PREFIX ?= $(HOME)/.cache/rhash/emacs27
# emacs30 / emacs27 on PATH when present, else the ones `make emacs30' /
# `make emacs27' unpack; empty when neither is there.
EMACS30 ?= $(firstword $(shell command -v emacs30 2>/dev/null) $(wildcard $(EMACS30_PREFIX)/bin/emacs30))
EMACS27 ?= $(firstword $(shell command -v emacs27 2>/dev/null) $(wildcard $(EMACS27_PREFIX)/bin/emacs27))
SOAK    ?=
# The library's name from cargo, and the name rhash.el loads, per OS.
UNAME   := $(shell uname -s 2>/dev/null || echo unknown)
ifeq ($(UNAME),Darwin)
  CARGO_LIB := librhash.dylib
  MODULE    := lisp/rhash-module.dylib
else ifneq ($(filter MINGW% MSYS% CYGWIN% Windows_NT,$(UNAME) $(OS)),)
  CARGO_LIB := rhash.dll
  MODULE    := lisp/rhash-module.dll
else
  CARGO_LIB := librhash.so
  MODULE    := lisp/rhash-module.so
endif
BATCH    = -Q --batch -L lisp -L test
# package-lint from Debian's elpa-package-lint, when installed.
PACKAGE_LINT_DIR ?= $(firstword $(wildcard /usr/share/emacs/site-lisp/elpa/package-lint-[0-9]*))
LET_ALIST_DIR    ?= $(firstword $(wildcard /usr/share/emacs/site-lisp/elpa/let-alist-[0-9]*))

.PHONY: all build elc demo test test-rust test-lisp lint bench bench-rust soak valgrind emacs30 emacs27 check-emacs check-cargo clean

all: build elc

# The module is replaced by a rename, never rewritten in place: an Emacs that
# has the old one loaded would crash.
build: check-cargo
	@echo "make: building the module with cargo (the first build takes about a minute)"
	$(CARGO) build --release
	@cmp -s target/release/$(CARGO_LIB) $(MODULE) || { \
	  cp target/release/$(CARGO_LIB) $(MODULE).tmp && mv -f $(MODULE).tmp $(MODULE); }

# Byte-compiled rhash.el (interpreted, rhash-make is ~10x slower).
elc: lisp/rhash.elc lisp/rhash-fallback.elc

lisp/rhash.elc lisp/rhash-fallback.elc: lisp/rhash.el lisp/rhash-fallback.el
	@if command -v $(EMACS) >/dev/null 2>&1; then \
	  echo "$(EMACS) -Q --batch -f batch-byte-compile lisp/rhash.el lisp/rhash-fallback.el"; \
	  $(EMACS) -Q --batch -L lisp -f batch-byte-compile lisp/rhash.el lisp/rhash-fallback.el; \
	else echo "note: Emacs not found (EMACS=$(EMACS)): lisp/*.el not byte-compiled"; fi

check-cargo:
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "make: cargo not found (CARGO=$(CARGO))."; \
	  echo "  rhash needs Rust 1.87 or newer; install it with rustup (https://rustup.rs):"; \
	  echo "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"; \
	  echo "  Debian bookworm's own cargo (apt-get install cargo, 1.65) is too old."; \
	  exit 1; }

check-emacs:
	@command -v $(EMACS) >/dev/null 2>&1 || { \
	  echo "make: Emacs not found (EMACS=$(EMACS))."; \
	  echo "  On Debian/Ubuntu: sudo apt-get install emacs-nox"; \
	  echo "  Or point EMACS at an Emacs 27.1+ binary: make EMACS=/path/to/emacs ..."; \
	  exit 1; }

demo: check-emacs build
	$(EMACS) $(BATCH) -l test/demo.el

# Each stage says what it runs; every stage runs even when one fails, and
# the last line sums up cargo's tests and every Emacs and mode:
# "N passed, M failed, K skipped".
TEST_LOGS = target/test-logs

test: check-emacs build
	@rm -rf $(TEST_LOGS) && mkdir -p $(TEST_LOGS)
	@echo "== stage 1: cargo test (the pure table against a model, property tests; about 1-2 min)"
	@{ $(CARGO) test --release 2>&1 || echo "cargo test: FAILED"; } | tee $(TEST_LOGS)/cargo.log \
	  | grep -v '^test .* \.\.\. ok$$' || true
	@n=2; for e in $(EMACS27) $(EMACS) $(EMACS30); do \
	  v=$$($$e -Q --batch --eval '(princ emacs-version)'); \
	  echo "== stage $$n: ERT on Emacs $$v, direct path, official path, Lisp fallback (about 1-2 min)"; \
	  EMACS=$$e sh test/run-ert.sh | tee $(TEST_LOGS)/ert-$$v.log; \
	  n=$$((n + 1)); \
	done
	@if [ -z "$(EMACS27)" ]; then echo "note: Emacs 27.1 not found (not tested); run 'make emacs27' to test it too"; fi
	@if [ -z "$(EMACS30)" ]; then echo "note: Emacs 30.1 not found (not tested); run 'make emacs30' to test it too"; fi
	@sh test/total.sh $(TEST_LOGS)

test-rust:
	$(CARGO) test --release

# Every ERT suite on each Emacs: 27 (EMACS27), 28 (EMACS) and 30 (EMACS30),
# the first and last when present.
test-lisp: check-emacs build
	@for e in $(EMACS27) $(EMACS) $(EMACS30); do \
	  echo "== ERT on $$($$e -Q --batch --eval '(princ emacs-version)')"; \
	  EMACS=$$e sh test/run-ert.sh || exit 1; \
	done

# Long runs: the differential suite, the hostile-file corpus and the
# native store's model test.
soak: check-emacs build
	RHASH_CORPUS_CASES=$${RHASH_CORPUS_CASES:-3000000} RHASH_NATIVE_STEPS=$${RHASH_NATIVE_STEPS:-1000000} \
	  $(CARGO) test --release --quiet --lib -- file:: native::
	RHASH_DIFF_OPS=$${RHASH_DIFF_OPS:-2000000} EMACS=$(EMACS) sh test/run-ert.sh

# The ERT suites under valgrind memcheck (slow: a few minutes).
valgrind: check-emacs build
	EMACS=$(EMACS) sh test/valgrind.sh

lint: build
	$(CARGO) clippy --release --all-targets -- -D warnings -D clippy::undocumented_unsafe_blocks
	mkdir -p target/lint && cp lisp/rhash.el lisp/rhash-fallback.el target/lint/
	$(EMACS) -Q --batch -L target/lint -L lisp --eval '(setq byte-compile-error-on-warn t)' \
	  -f batch-byte-compile target/lint/rhash.el target/lint/rhash-fallback.el
	@out=$$($(EMACS) -Q --batch --eval '(progn (require (quote checkdoc)) (checkdoc-file "lisp/rhash.el") (checkdoc-file "lisp/rhash-fallback.el"))' 2>&1); \
	  if [ -n "$$out" ]; then echo "$$out"; echo "checkdoc: warnings"; exit 1; else echo "checkdoc: clean"; fi
	@if [ -n "$(PACKAGE_LINT_DIR)" ]; then \
	  $(EMACS) -Q --batch -L $(PACKAGE_LINT_DIR) -L $(LET_ALIST_DIR) -l package-lint \
	    -f package-lint-batch-and-exit lisp/rhash.el && echo "package-lint: clean"; \
	else echo "note: package-lint not found, skipped (Debian: apt-get install elpa-package-lint)"; fi

bench: check-emacs build
	@for e in $(EMACS) $(EMACS30); do EMACS=$$e sh bench/run.sh || exit 1; done

bench-rust:
	$(CARGO) bench --bench table

emacs30:
	bash scripts/emacs-deb.sh 30 $(EMACS30_PREFIX)

emacs27:
	bash scripts/emacs-deb.sh 27 $(EMACS27_PREFIX)

clean:
	$(CARGO) clean
	rm -f $(MODULE) lisp/*.elc test/*.elc lisp/rhash-autoloads.el lisp/rhash-pkg.el
