#!/usr/bin/env bash
# make bench: the key local benchmarks, short, on 2 cores, and one table of
# ratios, each measured against its baseline in the same run (the two sides
# take turns inside one benchmark process), beside its goal.
#
#   bash scripts/bench.sh                 # one run, about 3-4 minutes on 2 cores
#   RUNS=3 bash scripts/bench.sh          # three runs: min / median / max of each ratio
#   PUSH_BIG=1000000 bash scripts/bench.sh   # the push goal at its real size (1M keys; +2-3 min)
#   KEEP=dir bash scripts/bench.sh        # keep the raw benchmark output in dir
#   BIN=path bash scripts/bench.sh        # a prebuilt `go test -c ./internal/engine` binary (A/B runs)
#   TABLE_ONLY=1 KEEP=dir RUNS=n bash scripts/bench.sh   # only the table, from dir/run1..n.txt
#
# Sizes (smaller than BENCHMARKS.md's, so make bench stays short):
#   PUSH_BIG  keys of the large store of the push benchmark (default 200000:
#             a proxy for the goal's 1M; the small store has 10k)
#   PULL_N    records pulled (default 50000)
#   GET_N     keys read by the Get benchmark (default 100000)
# Not part of make test: nothing here runs without -bench.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1}
PUSH_BIG=${PUSH_BIG:-1000000}
PULL_N=${PULL_N:-100000}
GET_N=${GET_N:-200000}
CPUS=${CPUS:-2}
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT

bin=${BIN:-}
if [ -n "${TABLE_ONLY:-}" ]; then
	: # the runs are in $KEEP already
elif [ -z "$bin" ]; then
	bin="$out/engine.test"
	echo "building the benchmark binary..." >&2
	go test -c -o "$bin" ./internal/engine
fi

export GOMAXPROCS=$CPUS
export EBREPLICA_BENCH_PUSH_BIG=$PUSH_BIG EBREPLICA_BENCH_PULL_N=$PULL_N EBREPLICA_BENCH_GET_N=$GET_N
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT

start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
for run in $(seq 1 "$RUNS"); do
	[ -z "${TABLE_ONLY:-}" ] || break
	f="$out/run$run.txt"
	: >"$f"
	echo "run $run of $RUNS: batched puts, gets, push, pull..." >&2
	# -test.cpu pins GOMAXPROCS for the benchmark; TMPDIR holds the stores.
	(cd "$tmp" && TMPDIR=$tmp "$bin" -test.run='^$' -test.cpu="$CPUS" -test.timeout=30m \
		-test.bench='^BenchmarkBatchPut$' -test.benchtime=100x) >>"$f"
	(cd "$tmp" && TMPDIR=$tmp "$bin" -test.run='^$' -test.cpu="$CPUS" -test.timeout=30m \
		-test.bench='^BenchmarkGet$' -test.benchtime=200x) >>"$f"
	(cd "$tmp" && TMPDIR=$tmp "$bin" -test.run='^$' -test.cpu="$CPUS" -test.timeout=30m \
		-test.bench='^BenchmarkPushChanged$' -test.benchtime=15x) >>"$f"
	(cd "$tmp" && TMPDIR=$tmp "$bin" -test.run='^$' -test.cpu="$CPUS" -test.timeout=30m \
		-test.bench='^BenchmarkPullMerge$' -test.benchtime=2x) >>"$f"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# metric FILE BENCH-REGEX METRIC: the value of METRIC on the first line of
# FILE whose benchmark name matches BENCH-REGEX.
metric() {
	awk -v re="$2" -v m="$3" '$1 ~ re { for (i = 3; i < NF; i++) if ($(i+1) == m) { print $i; exit } }' "$1"
}

# row LABEL BENCH METRIC GOAL-OP GOAL NOTE: one table row over all runs.
# METRIC may be NUM:DEN, two metrics of the same line: their quotient.
row() {
	local label=$1 bench=$2 name=$3 op=$4 goal=$5 note=$6 vals=() v n d
	for run in $(seq 1 "$RUNS"); do
		if [[ $name == *:* ]]; then
			n=$(metric "$out/run$run.txt" "$bench" "${name%%:*}")
			d=$(metric "$out/run$run.txt" "$bench" "${name#*:}")
			v=""
			[ -n "$n" ] && [ -n "$d" ] && v=$(awk -v n="$n" -v d="$d" 'BEGIN { if (d > 0) print n / d }')
		else
			v=$(metric "$out/run$run.txt" "$bench" "$name")
		fi
		[ -n "$v" ] && vals+=("$v")
	done
	if [ ${#vals[@]} -eq 0 ]; then
		printf '| %-44s | %-20s | %-8s | %-6s | %s\n' "$label" "no result" "$op $goal" "?" "$note"
		return
	fi
	printf '%s\n' "${vals[@]}" | sort -g | awk -v label="$label" -v op="$op" -v goal="$goal" -v note="$note" '
		{ v[NR] = $1 }
		END {
			n = NR; med = v[int((n + 1) / 2)]
			if (n == 1) shown = sprintf("%.2f", med)
			else shown = sprintf("%.2f / %.2f / %.2f", v[1], med, v[n])
			met = 0
			for (i = 1; i <= n; i++) if ((op == ">=" && v[i] >= goal) || (op == "<=" && v[i] <= goal)) met++
			if (met == n) verdict = "MET"
			else if (met == 0) verdict = "missed"
			else verdict = sprintf("%d of %d", met, n)
			printf "| %-44s | %-20s | %-8s | %-6s | %s\n", label, shown, op " " goal, verdict, note
		}'
}

big=$PUSH_BIG
if [ $((big % 1000000)) -eq 0 ]; then bigtag="$((big / 1000000))M"; else bigtag="$((big / 1000))k"; fi
echo
echo "ebreplica make bench — $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+dirty'), GOMAXPROCS=$CPUS, $RUNS run(s), $(( $(date +%s) - start ))s"
echo "load average before / after: $load0 / $load1 (on $(nproc) CPUs)"
echo "ratios: ours / raw Badger (throughput), same process, interleaved; push: time at ${bigtag} / time at 10k"
[ "$RUNS" -gt 1 ] && echo "several runs: min / median / max; MET = every run meets the goal"
echo
printf '| %-44s | %-20s | %-8s | %-6s | %s\n' "figure" "ratio" "goal" "met" "note"
printf '|%s|%s|%s|%s|%s\n' "----------------------------------------------" "----------------------" "----------" "--------" "------"
row "stamped Batch of 1000 Puts, Sync" 'BatchPut/sync' ratio '>=' 0.5 "vs raw WriteBatch + db.Sync"
row "stamped Batch of 1000 Puts, Relaxed" 'BatchPut/relaxed' ratio '>=' 0.5 "vs raw WriteBatch"
row "Get, memtable (${GET_N} keys)" 'BenchmarkGet/memtable' ratio '>=' 0.8 "vs raw txn.Get + ValueCopy"
row "Get, SSTs after reopen (${GET_N} keys)" 'BenchmarkGet/sst' ratio '>=' 0.8 "vs raw txn.Get + ValueCopy"
row "Push of 1k changes, ${bigtag} vs 10k keys" 'PushChanged' ratio-median-push '<=' 1.2 "median of 15 rounds; goal is at 1M"
row "  same, whole round (1k writes + push)" 'PushChanged' ratio-median '<=' 1.2 "for reference"
row "  same, CPU per whole round" 'PushChanged' "ms-cpu/round@${bigtag}:ms-cpu/round@10k" '<=' 1.2 "whole process, Badger's compactions too"
row "Pull-merge of ${PULL_N} records (memremote)" 'PullMerge' 'ratio-mem/raw' '>=' 0.8 "vs raw WriteBatch of the same"
row "  same, from fileremote" 'PullMerge' 'ratio-file/raw' '>=' 0.8 "vs raw WriteBatch of the same"
row "  same, CPU: raw's CPU per record / ours" 'PullMerge' 'us-cpu/rec-raw:us-cpu/rec-pull' '>=' 0.8 "steadier under load (whole process)"
echo
if [ -n "${KEEP:-}" ]; then echo "raw output: $out/run*.txt"; fi
