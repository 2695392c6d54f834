#!/usr/bin/env bash
# Per-thread CPU time (utime+stime, 10 ms ticks, /proc/PID/task) of kaito and llama-server and the
# machine's steal ticks (/proc/stat) over three alternate runs of shared-prefix concurrency 8 (2026-12-01
# 17:21–17:27 UTC; output in threads.txt). Run from the repository root.
set -euo pipefail
. scripts/lib/vs-llama-server.sh
out=${OUT:-target/shared8-threads}
rm -rf "$out"
kaito_vs_llama_server_start "$out"
read -r kpid lpid <<<"$KAITO_VS_PIDS"
snap() { for t in /proc/$1/task/*; do echo "$(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat)"; done | awk '{a[$1]+=$2} END {for (k in a) print k, a[k]}' | sort; }
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for run in 1 2 3; do
 for t in kaito llama-server; do
  [ $t = kaito ] && { pid=$kpid; url=$KAITO_URL; } || { pid=$lpid; url=$PEER_URL; }
  snap $pid > $out/before
  read -r s0 < <(head -1 /proc/stat | awk '{print $9}')
  /usr/bin/time -f "bench client cpu %U user %S sys" target/release/kaito bench --target "$t=$url" --workload shared-prefix --concurrency 8 --requests 24 --prompt-offset $((run*1000+20000)) --json $out/$t-$run.json 2>&1 | grep -E "tok/s|client cpu"
  read -r s1 < <(head -1 /proc/stat | awk '{print $9}')
  snap $pid > $out/after
  echo "== $t run $run steal ticks $((s1-s0))"; join $out/before $out/after | awk '{d=$3-$2; if (d>0) print "   ", $1, d}'
 done
done
