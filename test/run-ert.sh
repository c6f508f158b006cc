#!/bin/sh
# Run the ERT suites on $EMACS (default: emacs), byte-compiled:
#   1. every test/*-test.el in one batch Emacs;
#   2. test/rhash-assert.el under --module-assertions, in its own process
#      (assertions make every value access scan all live values: keep it
#      small; module modes only);
# in three modes: on the module's direct path, on its official path
# (RHASH_NO_DIRECT=1), and in the Lisp fallback without the module
# (RHASH_NO_MODULE=1).  RHASH_ERT_MODES="direct official lisp" picks
# some.  Each run asserts the mode it is in (rhash-path-expected).
# Byte-code goes to target/elc/VERSION/, so Emacs versions never share .elc
# files.  RHASH_DIFF_OPS and RHASH_DIFF_SEED tune the differential suite.
# The last line is "ERT (Emacs V): N passed, M failed, K skipped".
set -eu
EMACS=${EMACS:-emacs}
MODES=${RHASH_ERT_MODES:-direct official lisp}
cd "$(dirname "$0")/.."
version=$("$EMACS" -Q --batch --eval '(princ emacs-version)')
out=target/elc/$version
rm -rf "$out"
mkdir -p "$out"
cp lisp/rhash.el lisp/rhash-fallback.el test/*.el "$out/"
# Another module's user-ptrs for the robustness tests (skipped without cc).
for d in /usr/include /usr/local/include; do
  if [ -f "$d/emacs-module.h" ] && command -v "${CC:-cc}" >/dev/null 2>&1; then
    "${CC:-cc}" -shared -fPIC -O1 -I"$d" -o "$out/rhash-foreign-module.so" \
      test/foreign-module.c || echo "note: could not build test/foreign-module.c"
    break
  fi
done
# lisp/ stays on the path (after $out) for the module, rhash-module.so.
path="-L $out -L lisp"
echo "-- Emacs $version: byte-compiling rhash and the suites"
# A failed compilation still ends with the closing line (one failure).
# shellcheck disable=SC2086
if ! { "$EMACS" -Q --batch $path --eval '(setq byte-compile-error-on-warn t)' \
         -f batch-byte-compile "$out/rhash.el" "$out/rhash-fallback.el" &&
       "$EMACS" -Q --batch $path --eval '(setq byte-compile-error-on-warn t)' \
         -f batch-byte-compile "$out/rhash-data.el" "$out"/*-test.el "$out/rhash-assert.el"; }; then
  echo "ERT (Emacs $version): 0 passed, 1 failed, 0 skipped (byte-compilation failed)"
  exit 1
fi
loads=""
for f in "$out"/*-test.elc; do loads="$loads -l $f"; done
log=$out/ert.log
: >"$log"
status=0
for mode in $MODES; do
  case $mode in
    direct) env="RHASH_NO_DIRECT=0 RHASH_NO_MODULE=0" ;;
    official) env="RHASH_NO_DIRECT=1 RHASH_NO_MODULE=0" ;;
    # The fallback is built-in tables behind a type check: the
    # differential suite (built-in against built-in there) runs a fifth
    # of its operations, unless RHASH_DIFF_OPS says otherwise.
    lisp) env="RHASH_NO_DIRECT=0 RHASH_NO_MODULE=1 RHASH_DIFF_OPS=${RHASH_DIFF_OPS:-20000}" ;;
    *) echo "run-ert.sh: unknown mode $mode" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  printf '%s' "-- Emacs $version, $mode: every suite..."
  echo "== mode: $mode" >>"$log"
  # shellcheck disable=SC2086
  env $env "$EMACS" -Q --batch $path -l ert $loads \
    -f ert-run-tests-batch-and-exit >>"$log" 2>&1 || status=1
  if [ "$mode" != lisp ]; then
    # shellcheck disable=SC2086
    env $env RHASH_MODULE_ASSERTIONS=1 "$EMACS" -Q --batch \
      --module-assertions $path -l ert -l "$out/rhash-assert.elc" \
      -f ert-run-tests-batch-and-exit >>"$log" 2>&1 || status=1
  fi
  echo " $(($(date +%s) - start)) s"
done
# Show failures in full, passes as one line each.
grep -v '^   passed \|^  skipped ' "$log" | grep -v '^ *$' >"$out/ert.shown" || true
if [ $status != 0 ]; then cat "$out/ert.shown"; fi
# One closing line over every mode, for humans and CI log readers.
# ERT counts skipped tests among the results "as expected".
awk -v v="$version" '
  /^Ran [0-9]+ tests?, [0-9]+ results? as expected, [0-9]+ unexpected/ {
    e = $4; u = $8; s = 0
    if (match($0, /[0-9]+ skipped/)) s = substr($0, RSTART, RLENGTH) + 0
    p += e - s; f += u; k += s; runs++ }
  END { if (runs == 0) f++
        printf "ERT (Emacs %s): %d passed, %d failed, %d skipped\n", v, p, f, k }' "$log"
exit $status
