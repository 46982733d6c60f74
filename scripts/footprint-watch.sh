#!/bin/bash
# Peak RSS of the real `ebreplica sync --watch --interval 1s` on a replica of
# 100k keys x 100 B, default and small profile side by side, for 10 minutes,
# while a peer imports 1,000 random keys and syncs every 30 s (BENCHMARKS.md,
# "Profiles"). Each process's peak is reset once it has caught up (its first
# round that pulls nothing), 60 s in at the earliest. Linux.
#   scripts/footprint-watch.sh [path/to/ebreplica]   (default: ebreplica on $PATH)
set -e
B=${1:-ebreplica}; W=$(mktemp -d); mkdir -p $W/remote
trap 'rm -rf "$W"' EXIT
python3 -c '
import json,sys
v="x"*100
with open(sys.argv[1]+"/load.jsonl","w") as f:
    for i in range(100000): f.write(json.dumps({"key":"k%015d"%i,"value":v})+"\n")
' "$W"
$B --dir $W/seed init --remote $W/remote >/dev/null
$B --dir $W/seed import $W/load.jsonl >/dev/null
$B --dir $W/seed sync >/dev/null
$B --dir $W/peer init --remote $W/remote >/dev/null; $B --dir $W/peer sync >/dev/null
$B --dir $W/def init --remote $W/remote >/dev/null
$B --low-memory --dir $W/small init --remote $W/remote >/dev/null
$B --dir $W/def sync --watch --interval 1s > $W/def.out 2>&1 & D=$!
$B --low-memory --dir $W/small sync --watch --interval 1s > $W/small.out 2>&1 & S=$!
end=$((SECONDS+660)); n=0
maxd=0; maxs=0; resd=; ress=
while [ $SECONDS -lt $end ]; do
  if [ $((n % 60)) -eq 0 ]; then
    python3 -c '
import json,random,sys
r=random.Random('$n')
with open(sys.argv[1]+"/chg.jsonl","w") as f:
    for i in range(1000): f.write(json.dumps({"key":"k%015d"%r.randrange(100000),"value":"%05d"%i+"y"*95})+"\n")
' "$W"
    $B --dir $W/peer import $W/chg.jsonl >/dev/null && $B --dir $W/peer sync >/dev/null
  fi
  # Once a process has caught up (its first round that pulled nothing) and
  # 60 s have passed, reset its peak: what follows is the live sync alone.
  # (A fixed 60 s was too early when the two initial pulls ran slowly side
  # by side: the small one's peak then included the end of its pull.)
  if [ -z "$resd" ] && [ $SECONDS -ge $((end-600)) ] && grep -q 'pulled 0 records' $W/def.out; then
    echo "default: initial pull peak $(awk '/VmHWM/{print $2}' /proc/$D/status) KiB"; echo 5 > /proc/$D/clear_refs; maxd=0; resd=1
  fi
  if [ -z "$ress" ] && [ $SECONDS -ge $((end-600)) ] && grep -q 'pulled 0 records' $W/small.out; then
    echo "small: initial pull peak $(awk '/VmHWM/{print $2}' /proc/$S/status) KiB"; echo 5 > /proc/$S/clear_refs; maxs=0; ress=1
  fi
  d=$(awk '/VmRSS/{print $2}' /proc/$D/status); s=$(awk '/VmRSS/{print $2}' /proc/$S/status)
  [ -n "$resd" ] && [ "$d" -gt "$maxd" ] && maxd=$d; [ -n "$ress" ] && [ "$s" -gt "$maxs" ] && maxs=$s
  n=$((n+1)); sleep 0.5
done
echo "default: VmHWM $(awk '/VmHWM/{print $2}' /proc/$D/status) KiB, max VmRSS sample $maxd KiB, $(grep -E 'RssAnon|RssFile' /proc/$D/status | tr -s ' \n' ' ')"
echo "small:   VmHWM $(awk '/VmHWM/{print $2}' /proc/$S/status) KiB, max VmRSS sample $maxs KiB, $(grep -E 'RssAnon|RssFile' /proc/$S/status | tr -s ' \n' ' ')"
kill -INT $D $S; wait $D $S || true
tail -n2 $W/def.out $W/small.out
$B --dir $W/def len; $B --low-memory --dir $W/small len
