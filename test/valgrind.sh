#!/bin/sh
# Run the ERT suites under valgrind memcheck and report the errors whose
# innermost frame is in rhash-module.so.  Emacs's own conservative GC reads
# uninitialised stack words, so memcheck always reports errors inside
# emacs itself; only errors raised in our code count here.
set -eu
EMACS=${EMACS:-emacs}
cd "$(dirname "$0")/.."
version=$("$EMACS" -Q --batch --eval '(princ emacs-version)')
out=target/elc/$version
[ -f "$out/rhash-test.elc" ] || EMACS=$EMACS sh test/run-ert.sh >/dev/null
log=target/valgrind.log
RHASH_NATIVE_OPS=${RHASH_NATIVE_OPS:-3000} RHASH_NO_RSS_CHECK=1 RHASH_BULK_ROUNDS=${RHASH_BULK_ROUNDS:-40} valgrind --tool=memcheck --leak-check=no --num-callers=30 \
  --error-limit=no --log-file="$log" \
  "$EMACS" -Q --batch -L "$out" -L lisp -l ert -l "$out/rhash-test.elc" \
  -l "$out/rhash-robust-test.elc" -l "$out/rhash-path-test.elc" \
  -l "$out/rhash-bulk-test.elc" -l "$out/rhash-native-test.elc" \
  -l "$out/rhash-persist-test.elc" -f ert-run-tests-batch-and-exit 2>&1 | grep -E '^Ran |FAILED' || true
# An error block starts with a message line; its first "at" line is the
# innermost frame.
ours=$(awk '/^==[0-9]+== *$/ { inblock = 0; next }
            /^==[0-9]+==    at / { if (!seen) { seen = 1; if ($0 ~ /rhash/) n++ } next }
            /^==[0-9]+== [A-Z]/ { seen = 0 }
            END { print n + 0 }' "$log")
grep 'ERROR SUMMARY' "$log"
echo "valgrind: $ours errors with the innermost frame in rhash-module.so"
[ "$ours" -eq 0 ]
