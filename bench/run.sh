#!/bin/sh
# bench/run.sh: rhash vs built-in hash tables on $EMACS (default: emacs).
#
#   EMACS=emacs sh bench/run.sh > out.md     (make bench runs it per Emacs)
#
# Works on a private copy: lisp/rhash.el, lisp/rhash-module.so and
# bench/bench.el are copied to a temporary directory and byte-compiled there
# with $EMACS, so concurrent rebuilds of lisp/ and other Emacs versions' .elc
# files do not interfere.  Then one batch Emacs runs `bench-main': markdown on
# stdout, progress on stderr.
#
# If a C compiler and emacs-module.h are found, an empty C module is built
# too, to measure the bare module-call floor (`bench-nop1').
#
# Then the main and set-operation rows again on the official path
# (RHASH_NO_DIRECT=1; RHASH_BENCH_OFFICIAL=0 skips it,
# RHASH_BENCH_OFFICIAL_SECTIONS and RHASH_BENCH_OFFICIAL_SIZES choose).
#
# If the Emacs has native compilation and RHASH_BENCH_NATIVE is not 0, a
# second process runs the call floor and the get/put rows with bench.el
# native-compiled (RHASH_BENCH_NATIVE_KEYS, RHASH_BENCH_NATIVE_SIZES and
# RHASH_BENCH_NATIVE_WORKLOADS choose the subset).
#
# Every knob of bench.el is an environment variable (see its header):
# RHASH_BENCH_SIZES, RHASH_BENCH_ROUNDS, RHASH_BENCH_MIN_OPS, RHASH_BENCH_KEYS,
# RHASH_BENCH_BIG, RHASH_BENCH_BIG_KEYS, RHASH_BENCH_WORKLOADS,
# RHASH_BENCH_BULK_SIZE, RHASH_BENCH_BULK_KEYS, RHASH_BENCH_MEM_SIZES,
# RHASH_BENCH_SECTIONS.
set -eu
EMACS=${EMACS:-emacs}
CC=${CC:-cc}
cd "$(dirname "$0")/.."
if [ ! -f lisp/rhash-module.so ]; then
  echo "bench/run.sh: lisp/rhash-module.so is missing; run 'make build' first" >&2
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rhash-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
cp lisp/rhash.el lisp/rhash-fallback.el lisp/rhash-module.so bench/bench.el "$tmp/"

# The empty C module for the call floor (optional).
header=""
for d in "$(dirname "$(command -v "$EMACS")")/../root/usr/include" /usr/include /usr/local/include; do
  if [ -f "$d/emacs-module.h" ]; then header=$d; break; fi
done
if [ -n "$header" ] && command -v "$CC" >/dev/null 2>&1; then
  if "$CC" -O2 -shared -fPIC -I"$header" -o "$tmp/bench-nop.so" bench/nop.c 2>"$tmp/cc.log"; then
    RHASH_BENCH_NOP_MODULE=$tmp/bench-nop.so
    export RHASH_BENCH_NOP_MODULE
  else
    echo "bench/run.sh: could not build the empty C module (see below); floor row skipped" >&2
    cat "$tmp/cc.log" >&2
  fi
fi

RHASH_BENCH_EMACS=$EMACS
export RHASH_BENCH_EMACS
"$EMACS" -Q --batch -L "$tmp" --eval '(setq byte-compile-warnings (quote (not obsolete)))' \
  -f batch-byte-compile "$tmp/rhash.el" "$tmp/bench.el" >&2
"$EMACS" -Q --batch -L "$tmp" -l "$tmp/bench.elc" -f bench-main
# The same operations on the official path (RHASH_NO_DIRECT=1), for the
# side-by-side comparison: main and set-operation rows only, unless told.
if [ "${RHASH_BENCH_OFFICIAL:-1}" != 0 ]; then
  RHASH_NO_DIRECT=1 \
  RHASH_BENCH_SECTIONS=${RHASH_BENCH_OFFICIAL_SECTIONS:-main setops} \
  RHASH_BENCH_SIZES=${RHASH_BENCH_OFFICIAL_SIZES:-${RHASH_BENCH_SIZES:-1000 100000}} \
    "$EMACS" -Q --batch -L "$tmp" -l "$tmp/bench.elc" -f bench-main
fi

if [ "${RHASH_BENCH_NATIVE:-1}" != 0 ] &&
   "$EMACS" -Q --batch --eval '(kill-emacs (if (and (fboundp (quote native-comp-available-p)) (native-comp-available-p)) 0 1))' 2>/dev/null; then
  echo "bench: native-compiling bench.el" >&2
  mkdir -p "$tmp/eln"
  if "$EMACS" -Q --batch -L "$tmp" \
       --eval "(setq native-comp-eln-load-path (list \"$tmp/eln/\"))" \
       --eval "(native-compile \"$tmp/bench.el\" \"$tmp/bench.eln\")" >"$tmp/native.log" 2>&1 &&
     [ -f "$tmp/bench.eln" ]; then
    RHASH_BENCH_SECTIONS=${RHASH_BENCH_NATIVE_SECTIONS:-floor main} \
    RHASH_BENCH_KEYS=${RHASH_BENCH_NATIVE_KEYS:-fixnum str-fn} \
    RHASH_BENCH_SIZES=${RHASH_BENCH_NATIVE_SIZES:-100000} \
    RHASH_BENCH_WORKLOADS=${RHASH_BENCH_NATIVE_WORKLOADS:-get-hit get-miss put-over} \
      "$EMACS" -Q --batch -L "$tmp" \
        --eval "(setq native-comp-eln-load-path (list \"$tmp/eln/\"))" \
        -l "$tmp/bench.eln" -f bench-main
  else
    echo "bench/run.sh: native compilation failed; native rows skipped" >&2
    tail -20 "$tmp/native.log" >&2
  fi
fi

# Native storage and files: GC cost, memory, speed, save and load
# (each measurement in a fresh Emacs; RHASH_BENCH_STORAGE_N entries).
if [ "${RHASH_BENCH_STORAGE:-1}" != 0 ]; then
  cp bench/native.el "$tmp/"
  "$EMACS" -Q --batch -L "$tmp" -l "$tmp/native.el" \
    -f rhash-bench-native "${RHASH_BENCH_STORAGE_N:-1000000}"
fi
