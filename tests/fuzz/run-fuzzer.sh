#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on its committed seed corpus. New inputs go
# to a temporary folder (removed on exit), so the repository's corpus stays as committed.
# usage: run-fuzzer.sh FUZZER SEED_CORPUS_DIR SECONDS [DICTIONARY]
#
# -detect_leaks=0 turns off libFuzzer's leak check after each input only: LeakSanitizer still
# checks the whole process at exit and fails the run on any leak it is not told to ignore.
# The per-input check costs ~100 ms whenever an input leaks, and libconfig 1.5 leaks a few
# bytes on some syntax errors (suppressed in config_fuzz.cc), which made it 10x slower.
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3
dict=()
if [ $# -ge 4 ]; then dict=(-dict="$4"); fi
work=$(mktemp -d "${TMPDIR:-/tmp}/sbc-fuzz-$$-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cd "$work"  # crash-* files land here and are printed below before removal
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -detect_leaks=0 "${dict[@]}" "$work/corpus" "$seeds" 2>&1 | tail -n 40 || status=$?
for crash in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
  [ -e "$crash" ] || continue
  echo "finding: $(basename "$crash"), base64:"
  base64 -w 0 "$crash"
  echo
done
exit "$status"
