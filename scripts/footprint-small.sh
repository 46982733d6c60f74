#!/bin/bash
# Peak RSS of one small-profile `ebreplica --low-memory sync --watch --interval 1s`
# on a replica of 100k keys x 100 B, while a peer imports 1,000 random keys and
# syncs every 30 s; its peak is reset 40 s
# in (after its initial pull) and measured for the next SECONDS (default 600). Prints VmHWM, and where the resident pages were
# (per mapping: the binary, Badger's .sst/.mem/.vlog files, anonymous memory)
# at the largest VmRSS seen by a 10 Hz sampler. Linux, python3.
#   scripts/footprint-small.sh path/to/ebreplica [seconds]
#   GOMEMLIMIT=32MiB scripts/footprint-small.sh ...   (the environment reaches the watch)
set -e
B=$(realpath "$1"); T=${2:-600}
W=$(mktemp -d); mkdir -p $W/remote
trap 'kill $S $P 2>/dev/null; rm -rf "$W"' EXIT
python3 - "$W" <<'EOF'
import json,sys
with open(sys.argv[1]+"/load.jsonl","w") as f:
    for i in range(100000): f.write(json.dumps({"key":"k%015d"%i,"value":"x"*100})+"\n")
EOF
$B --dir $W/seed init --remote $W/remote >/dev/null
$B --dir $W/seed import $W/load.jsonl >/dev/null
$B --dir $W/seed sync >/dev/null
$B --dir $W/peer init --remote $W/remote >/dev/null; $B --dir $W/peer sync >/dev/null
$B --low-memory --dir $W/small init --remote $W/remote >/dev/null
$B --low-memory --dir $W/small sync --watch --interval 1s > $W/small.out 2>&1 & S=$!
python3 - $S $W/atmax.txt 40 <<'EOF' &
import sys,time,collections
pid,out,after=sys.argv[1],sys.argv[2],float(sys.argv[3])
t0=time.time(); best=0; reset=False
def status():
    d={}
    for l in open(f"/proc/{pid}/status"):
        p=l.split()
        if p[0] in ("VmRSS:","RssAnon:","RssFile:"): d[p[0][:-1]]=int(p[1])
    return d
def smaps():
    agg=collections.Counter(); cur=None
    for line in open(f"/proc/{pid}/smaps"):
        p=line.split()
        if not p[0].endswith(':') and '-' in p[0]:
            name=p[5] if len(p)>5 else '[anon]'
            base=name.rsplit('/',1)[-1]
            if '/small/data/' in name and '.' in base: name=base.rsplit('.',1)[-1]+' files'
            cur=name
        elif p[0]=='Rss:': agg[cur]+=int(p[1])
    return "\n".join(f"  {v/1024:6.1f} MiB {k}" for k,v in agg.most_common(6))
while True:
    try:
        if not reset and time.time()-t0>=after:
            open(f"/proc/{pid}/clear_refs","w").write("5"); reset=True
        d=status()
        if reset and d["VmRSS"]>best:
            best=d["VmRSS"]
            open(out,"w").write(f"largest VmRSS seen {best} KiB at {time.time()-t0:.0f} s (anonymous {d['RssAnon']}, file {d['RssFile']} KiB):\n{smaps()}\n")
    except Exception: break
    time.sleep(0.1)
EOF
P=$!
end=$((SECONDS+T+40)); n=0
while [ $SECONDS -lt $end ]; do
  python3 - "$W" $n <<'EOF'
import json,random,sys
r=random.Random(int(sys.argv[2]))
with open(sys.argv[1]+"/chg.jsonl","w") as f:
    for i in range(1000): f.write(json.dumps({"key":"k%015d"%r.randrange(100000),"value":"%05d"%i+"y"*95})+"\n")
EOF
  $B --dir $W/peer import $W/chg.jsonl >/dev/null && $B --dir $W/peer sync >/dev/null
  n=$((n+1)); sleep 30
done
echo "small: VmHWM $(awk '/VmHWM/{print $2}' /proc/$S/status) KiB over ${T} s after the first 40 s"
cat $W/atmax.txt
kill -INT $S; wait $S || true
$B --low-memory --dir $W/small len
