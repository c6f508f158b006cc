#!/bin/sh
# Run the ERT suites on $EMACS (default: emacs), byte-compiled:
#   1. every test/*-test.el in one batch Emacs;
#   2. test/rhash-assert.el under --module-assertions, in its own process
#      (assertions make every value access scan all live values: keep it small);
# each on the direct path and on the official one (RHASH_NO_DIRECT=1).
# Byte-code goes to target/elc/VERSION/, so Emacs versions never share .elc
# files.  RHASH_DIFF_OPS and RHASH_DIFF_SEED tune the differential suite.
set -eu
EMACS=${EMACS:-emacs}
cd "$(dirname "$0")/.."
version=$("$EMACS" -Q --batch --eval '(princ emacs-version)')
out=target/elc/$version
rm -rf "$out"
mkdir -p "$out"
cp lisp/rhash.el test/*.el "$out/"
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
# shellcheck disable=SC2086
"$EMACS" -Q --batch $path --eval '(setq byte-compile-error-on-warn t)' \
  -f batch-byte-compile "$out/rhash.el"
# shellcheck disable=SC2086
"$EMACS" -Q --batch $path --eval '(setq byte-compile-error-on-warn t)' \
  -f batch-byte-compile "$out"/*-test.el "$out/rhash-assert.el"
loads=""
for f in "$out"/*-test.elc; do loads="$loads -l $f"; done
log=$out/ert.log
: >"$log"
status=0
# Both access paths: the direct one (the default where the self-test
# passes) and the official module API alone (RHASH_NO_DIRECT=1).
for nodirect in 0 1; do
  echo "== path: $([ $nodirect = 1 ] && echo official || echo direct)" >>"$log"
  # shellcheck disable=SC2086
  RHASH_NO_DIRECT=$nodirect "$EMACS" -Q --batch $path -l ert $loads \
    -f ert-run-tests-batch-and-exit >>"$log" 2>&1 || status=1
  # shellcheck disable=SC2086
  RHASH_NO_DIRECT=$nodirect RHASH_MODULE_ASSERTIONS=1 "$EMACS" -Q --batch \
    --module-assertions $path -l ert -l "$out/rhash-assert.elc" \
    -f ert-run-tests-batch-and-exit >>"$log" 2>&1 || status=1
done
# Show failures in full, passes as one line each.
grep -v '^   passed ' "$log" || true
# One closing line over every group, for humans and CI log readers.
echo "(Emacs $version, direct and official paths)"
awk '/^Ran [0-9]+ tests?, [0-9]+ results? as expected, [0-9]+ unexpected/ { p += $4; f += $8 }
     END { printf "ERT: %d passed, %d failed\n", p, f }' "$log"
exit $status
