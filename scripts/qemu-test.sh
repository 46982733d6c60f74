#!/usr/bin/env bash
# The linux/arm (GOARM=7, 32-bit) and linux/arm64 builds under qemu-user
# (issue 19), called by scripts/test.sh. For each: the store's profile and
# compaction tests, internal/residency's tests, `ebreplica demo`, and two
# replicas syncing 12,000 1 KiB values through a directory remote with a
# kill -9 in the middle of the push and another in the middle of the pull;
# after a rerun both must hold the same data, nothing pending, and verify
# must pass.
#
# qemu-user comes from Debian's package (installed with apt-get when
# missing). Where it cannot be had, the script says so and skips, except
# under CI=true, where that is a failure.
#
#   scripts/qemu-test.sh            both architectures
#   scripts/qemu-test.sh arm        one (arm or arm64)
set -euo pipefail
cd "$(dirname "$0")/.."

ci=false
[ "${CI:-}" = true ] && ci=true

skip_or_fail() {
	if $ci; then
		echo "qemu-test: $1 (CI=true: failing)" >&2
		exit 1
	fi
	echo "qemu-test: $1: skipping the qemu-user tests" >&2
	exit 0
}

# qemu_for ARCH prints the qemu-user binary for ARCH, if installed.
qemu_for() {
	local name=$1
	for b in "qemu-$name" "qemu-$name-static"; do
		if command -v "$b" >/dev/null 2>&1; then
			echo "$b"
			return 0
		fi
	done
	return 1
}

if ! qemu_for arm >/dev/null || ! qemu_for aarch64 >/dev/null; then
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		echo "qemu-test: installing qemu-user with apt-get" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q --no-install-recommends qemu-user >&2 ||
			{ apt-get update -q >&2 && apt-get install -y -q --no-install-recommends qemu-user >&2; } ||
			skip_or_fail "apt-get could not install qemu-user"
	else
		skip_or_fail "qemu-user is not installed and apt-get (as root) is not available"
	fi
fi

archs=("$@")
[ ${#archs[@]} -eq 0 ] && archs=(arm arm64)

work=$(mktemp -d "${TMPDIR:-/tmp}/ebreplica-qemu.XXXXXX")
bgpid=
cleanup() {
	if [ -n "$bgpid" ]; then kill -9 "$bgpid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "qemu-test: $*" >&2
	exit 1
}

# 12,000 keys with 1 KiB values (hex of a fixed pseudo-random sequence):
# 12 MiB raw, two segments of the default 8 MiB cap, each far over the
# small profile's 614 KiB transaction limit.
awk 'BEGIN {
	srand(19)
	for (i = 0; i < 12000; i++) {
		v = ""
		for (j = 0; j < 64; j++) v = v sprintf("%08x", int(rand() * 4294967296))
		printf "{\"key\":\"k%05d\",\"value\":\"%s\"}\n", i, v
	}
}' >"$work/data.jsonl"

# kill_during DESC PATTERN CMD...: start CMD in the background, kill -9 it as
# soon as a file matching PATTERN (a find -path) exists under the work
# directory, or after 20 s; report whether it was still running then.
kill_during() {
	local desc=$1 pattern=$2
	shift 2
	"$@" >/dev/null 2>"$work/bg.err" &
	bgpid=$!
	local i
	for i in $(seq 1 400); do
		if [ -n "$(find "$work" -path "$pattern" -print -quit 2>/dev/null)" ] || ! kill -0 "$bgpid" 2>/dev/null; then
			break
		fi
		sleep 0.05
	done
	if kill -9 "$bgpid" 2>/dev/null; then
		echo "  $desc: killed with SIGKILL while running"
	else
		echo "  $desc: had already finished (no kill landed)"
	fi
	wait "$bgpid" 2>/dev/null || true
	bgpid=
}

run_arch() {
	local arch=$1 goarm= qemu
	case $arch in
	arm) goarm=7 qemu=$(qemu_for arm) ;;
	arm64) qemu=$(qemu_for aarch64) ;;
	*) fail "unknown architecture $arch (arm or arm64)" ;;
	esac
	local d="$work/$arch" start=$SECONDS
	mkdir -p "$d"
	echo "qemu-test: linux/$arch${goarm:+ (GOARM=$goarm)} under $qemu"
	GOOS=linux GOARCH=$arch GOARM=$goarm CGO_ENABLED=0 go build -o "$d/ebreplica" ./cmd/ebreplica
	GOOS=linux GOARCH=$arch GOARM=$goarm CGO_ENABLED=0 go test -c -o "$d/store.test" ./store
	local e=("$qemu" "$d/ebreplica")

	# The store's profile, transaction-cost and compaction tests.
	(cd "$d" && "$qemu" ./store.test -test.short -test.count=1 \
		-test.run '^(TestProfileFor|TestBadgerMutationCostValueLog|TestSmallProfileCompaction|TestMaybeCollectGarbageInterval|TestBadgerMutationCost)$') ||
		fail "linux/$arch: store tests failed"
	echo "  store tests: ok"

	# The small profile's release of start-up pages refuses an address
	# space it cannot see (qemu-user passes the host's /proc/self/smaps
	# through) and changes nothing.
	GOOS=linux GOARCH=$arch GOARM=$goarm CGO_ENABLED=0 go test -c -o "$d/residency.test" ./internal/residency
	(cd "$d" && "$qemu" ./residency.test -test.count=1) || fail "linux/$arch: residency tests failed"
	echo "  residency tests: ok"

	# demo
	"${e[@]}" demo >"$d/demo.out" 2>&1 || { cat "$d/demo.out" >&2; fail "linux/$arch: demo failed"; }
	grep -q '^converged' "$d/demo.out" || { cat "$d/demo.out" >&2; fail "linux/$arch: demo did not converge"; }
	echo "  demo: converged"

	# Two replicas through a directory remote, kill -9 mid-push and mid-pull.
	local r="$d/remote" a="$d/a" b="$d/b"
	mkdir -p "$r"
	"${e[@]}" --dir "$a" init --remote "$r" >/dev/null
	"${e[@]}" --dir "$a" import "$work/data.jsonl" >/dev/null
	local profile
	profile=$("${e[@]}" --dir "$a" status --json | sed -n 's/.*"profile":"\([a-z]*\)".*/\1/p')
	echo "  profile: $profile"
	if [ "$arch" = arm ] && [ "$profile" != small ]; then
		fail "linux/arm: profile $profile, want small (chosen on 32-bit)"
	fi
	kill_during "push" "$r/log/*1" "${e[@]}" --dir "$a" sync
	"${e[@]}" --dir "$a" sync >/dev/null || fail "linux/$arch: sync after the kill failed"
	local pending
	pending=$("${e[@]}" --dir "$a" status --json | sed -n 's/.*"pending":\([0-9]*\).*/\1/p')
	[ "$pending" = 0 ] || fail "linux/$arch: $pending keys still pending after the rerun"
	"${e[@]}" --dir "$b" init --remote "$r" >/dev/null
	kill_during "pull" "$b/data/*.sst" "${e[@]}" --dir "$b" --low-memory sync
	"${e[@]}" --dir "$b" --low-memory sync >/dev/null || fail "linux/$arch: pull after the kill failed"
	local na nb
	na=$("${e[@]}" --dir "$a" export | sha256sum)
	nb=$("${e[@]}" --dir "$b" export | sha256sum)
	[ "$na" = "$nb" ] || fail "linux/$arch: the replicas differ after sync"
	[ "$("${e[@]}" --dir "$b" len)" = 12000 ] || fail "linux/$arch: b holds $("${e[@]}" --dir "$b" len) keys, want 12000"
	"${e[@]}" --dir "$a" verify >/dev/null || fail "linux/$arch: verify failed"
	echo "  two replicas, kill -9 mid-push and mid-pull: converged, 12000 keys, verify ok ($((SECONDS - start)) s)"
}

for arch in "${archs[@]}"; do
	run_arch "$arch"
done
