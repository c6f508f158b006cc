#!/bin/sh
# The closing line of `make test': cargo's test results and every ERT
# summary line in the logs of DIR summed up, as "N passed, M failed,
# K skipped" (cargo's ignored tests count as skipped).  Exits non-zero
# when anything failed or a stage left no result.
set -eu
dir=${1:-target/test-logs}
awk '
  /^test result: / {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i
      if ($(i+1) ~ /^failed/) f += $i
      if ($(i+1) ~ /^ignored/) k += $i
    }
    cargo++ }
  /^cargo test: FAILED/ { bad++ }
  /^ERT \(Emacs [^)]*\): [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped/ {
    p += $4; f += $6; k += $8; ert++ }
  END {
    if (cargo == 0 || bad > 0) { f++; print "note: cargo test did not finish (counted as 1 failure)" }
    printf "%d passed, %d failed, %d skipped\n", p, f, k
    exit (f > 0) }' "$dir"/*.log
