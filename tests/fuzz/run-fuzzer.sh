#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time on its committed seed corpus. New inputs go
# to a temporary folder (removed on exit), so the repository's corpus stays as committed.
# usage: run-fuzzer.sh FUZZER SEED_CORPUS_DIR SECONDS
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/sbc-fuzz-$$-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cd "$work"  # crash-* files land here and are printed below before removal
status=0
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  "$work/corpus" "$seeds" 2>&1 | tail -n 40 || status=$?
for crash in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
  [ -e "$crash" ] || continue
  echo "finding: $(basename "$crash"), base64:"
  base64 -w 0 "$crash"
  echo
done
exit "$status"
