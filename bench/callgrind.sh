#!/bin/sh
# Instructions per operation under callgrind (exact, unlike timings on a
# noisy machine):  EMACS=emacs sh bench/callgrind.sh rget rget-sym rput ...
# Each OP of bench/cg.el runs with N = 0 and N = 100000 iterations; the
# difference over 100000 is printed (loop included: see OP `loop').
# Operations: loop gethash rget gethash-sym rget-sym gethash-str rget-str
# gethash-long rget-long ("my-package--internal-function-%d" keys)
# rget-native rput-native (a native eql table of fixnums)
# puthash rput remput rremput (cg-run); getmany tally merge equal uniq deldups
# getmanyl getmanylisp (a key list; the mapcar + gethash loop)
# getmanynative (a native eql table) rkeys hkeys (rhash-keys; a maphash + push loop)
# tallyl tallylisp (a key list; the dolist + puthash/gethash loop) copy copyhash mergecopy mergecopyhash (B, keys 500..1499, into a copy of A)
# (cg-bulk, per element of a 1000-element call; uniq and deldups: 100
# distinct fixnums, deldups on a fresh copy); maphash rmap (cg-map, per entry).
# Floors: nop2 (`(bench-nop2 k r)', get's and remove's shape), nop3
# (`(bench-nop3 k v r)', put's shape), nopremput (nop2 + nop3, rremput's),
# from the empty C module bench/nop.c; nopwalk (per entry: a C loop calling
# the function through env->funcall, `rhash-map''s floor).
# RHASH_NO_DIRECT=1 measures the official path.
set -eu
EMACS=${EMACS:-emacs}
CC=${CC:-cc}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rhash-cg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp lisp/rhash.el lisp/rhash-module.so bench/cg.el "$tmp/"
header=""
for d in "$(dirname "$(command -v "$EMACS")")/../root/usr/include" /usr/include /usr/local/include; do
  if [ -f "$d/emacs-module.h" ]; then header=$d; break; fi
done
if [ -n "$header" ] && "$CC" -O2 -shared -fPIC -I"$header" -o "$tmp/bench-nop.so" bench/nop.c 2>/dev/null; then
  RHASH_BENCH_NOP_MODULE=$tmp/bench-nop.so
  export RHASH_BENCH_NOP_MODULE
fi
"$EMACS" -Q --batch -L "$tmp" -f batch-byte-compile "$tmp/rhash.el" "$tmp/cg.el" 2>/dev/null
count() {
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/out" \
    "$EMACS" -Q --batch -L "$tmp" -l cg --eval "($1 '$2 $3)" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for op in "$@"; do
  case $op in
    getmany|getmanyl|getmanylisp|getmanynative|tallyl|tallylisp|rkeys|hkeys|vconcatl|applyvec|appendv|makevec|makelist|tally|merge|equal|uniq|deldups|copy|copyhash|mergecopy|mergecopyhash) f=cg-bulk; n=100; per=100000 ;;
    maphash|rmap|nopwalk|lispwalk) f=cg-map; n=100; per=100000 ;;
    *) f=cg-run; n=100000; per=100000 ;;
  esac
  a=$(count $f "$op" 0)
  b=$(count $f "$op" $n)
  echo "$op $(( (b - a) / per ))"
done
