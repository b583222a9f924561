#!/bin/sh
# DPDK fast-path benchmark, one command: cycles per packet (median of 5 runs), heap
# allocations and the timed thread's system calls over the timed regions (zero expected).
# Syscalls are counted with strace: the bench thread calls getppid() right before and
# right after each timed region; every other syscall strace records on that thread between
# such a pair is counted.  Usage: tools/bench_fast_path.sh [path to bench_fast_path]
set -eu
BIN=${1:-build/dpdk/tools/bench_fast_path}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT INT TERM
echo "== cycles per packet and heap allocations (no tracer attached), 4 KiB pages (--no-huge)"
"$BIN" 5 400 1024
# 2 MiB hugepages as in production, when enough are free (e.g. after
# echo 256 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages): DPDK's memory, which
# holds the mbufs and the flow state, is then mapped by a few TLB entries.
FREE=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
if [ "$FREE" -ge 160 ]; then
  echo "== the same in 2 MiB hugepages ($FREE free)"
  "$BIN" 5 400 1024 10000 huge
  MEMORY=huge
else
  echo "== (no hugepage run: $FREE free 2 MiB hugepages, 160 needed)"
  MEMORY=nohuge
fi
# Subscriber lines: the access side latches (terminals behind NAT), so each packet also
# reads its flow's latched source; in the other direction packets go to the terminals'
# latched addresses, behind the access realm's gateway.
echo "== the same with a latching access side (subscriber lines), $MEMORY"
"$BIN" 5 400 1024 10000 $MEMORY latch
echo "== the same from the core to the latched terminals, $MEMORY"
"$BIN" 5 400 1024 10000 $MEMORY latch reverse
echo "== system calls of the timed thread inside the timed regions (strace -f)"
strace -f -qq -o "$OUT/trace" "$BIN" 1 100 1024 > "$OUT/stdout"
TID=$(sed -n 's/.* thread \([0-9][0-9]*\).*/\1/p' "$OUT/stdout" | head -n 1)
awk -v tid="$TID" '
  $1 == tid && $2 ~ /^getppid\(/ { inside = !inside; markers++; next }
  $1 == tid && inside { n++; print "  in timed region: " $0 > "/dev/stderr" }
  END { printf "timed regions: %d, syscalls inside them: %d\n", markers / 2, n + 0 }' "$OUT/trace"
