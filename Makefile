# rhash: build the module, run the demo, the tests and the benchmarks.
#
#   make          build lisp/rhash-module.so (release) next to lisp/rhash.el
#   make demo     build, then show rhash at work in batch Emacs
#   make test     cargo tests + ERT suites on every Emacs found (28 and 30)
#   make bench    rhash vs built-in tables, ratios per row
#   make emacs30  unpack Emacs 30.1 from Debian backports beside 28.2

EMACS   ?= emacs
CARGO   ?= cargo
EMACS30_PREFIX ?= $(HOME)/.cache/rhash/emacs30
EMACS30 ?= $(wildcard $(EMACS30_PREFIX)/bin/emacs30)
SOAK    ?=
MODULE  := lisp/rhash-module.so
BATCH    = -Q --batch -L lisp -L test

.PHONY: all build demo test test-rust test-lisp lint bench bench-rust soak valgrind emacs30 check-emacs clean

all: build

build:
	$(CARGO) build --release --quiet
	@cmp -s target/release/librhash.so $(MODULE) || cp target/release/librhash.so $(MODULE)

check-emacs:
	@command -v $(EMACS) >/dev/null 2>&1 || { \
	  echo "make: Emacs not found (EMACS=$(EMACS))."; \
	  echo "  On Debian/Ubuntu: sudo apt-get install emacs-nox"; \
	  echo "  Or point EMACS at an Emacs 28.2+ binary: make EMACS=/path/to/emacs ..."; \
	  exit 1; }

demo: check-emacs build
	$(EMACS) $(BATCH) -l test/demo.el

test: test-rust test-lisp

test-rust:
	$(CARGO) test --release --quiet

# Every ERT suite on each Emacs: 28 (EMACS) and 30 (EMACS30, when present).
test-lisp: check-emacs build
	@for e in $(EMACS) $(EMACS30); do \
	  echo "== ERT on $$($$e -Q --batch --eval '(princ emacs-version)')"; \
	  EMACS=$$e sh test/run-ert.sh || exit 1; \
	done
	@if [ -z "$(EMACS30)" ]; then echo "note: Emacs 30.1 not found; run 'make emacs30' to test it too"; fi

soak: check-emacs build
	RHASH_DIFF_OPS=$${RHASH_DIFF_OPS:-2000000} EMACS=$(EMACS) sh test/run-ert.sh

# The ERT suites under valgrind memcheck (slow: a few minutes).
valgrind: check-emacs build
	EMACS=$(EMACS) sh test/valgrind.sh

lint: build
	$(CARGO) clippy --release --all-targets -- -D warnings
	mkdir -p target/lint && cp lisp/rhash.el target/lint/
	$(EMACS) -Q --batch -L target/lint -L lisp --eval '(setq byte-compile-error-on-warn t)' \
	  -f batch-byte-compile target/lint/rhash.el

bench: check-emacs build
	@for e in $(EMACS) $(EMACS30); do EMACS=$$e sh bench/run.sh || exit 1; done

bench-rust:
	$(CARGO) bench --bench table

emacs30:
	bash scripts/emacs30.sh $(EMACS30_PREFIX)

clean:
	$(CARGO) clean
	rm -f $(MODULE) lisp/*.elc test/*.elc
