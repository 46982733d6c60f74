#!/usr/bin/env bash
# gcsserver.sh: the Google Cloud Storage emulator of the tests,
# fake-gcs-server (which enforces generation preconditions), in memory.
#
#   scripts/gcsserver.sh install
#       build fake-gcs-server into .ci/bin with the Go toolchain through the
#       module proxy; does nothing when the pinned version is there
#   eval "$(scripts/gcsserver.sh start)"
#       start it on a free loopback port (plain HTTP) and export
#         EBREPLICA_TEST_GCS_ENDPOINT   http://127.0.0.1:PORT
#         EBREPLICA_TEST_GCS_REQUIRED   1 (a missing emulator fails the tests)
#         EBREPLICA_TEST_GCS_DIR        its state directory (PID file, log)
#   scripts/gcsserver.sh stop [DIR]
#       stop the emulator started from DIR (default: EBREPLICA_TEST_GCS_DIR,
#       else the last one started) and remove DIR
#
# The emulator takes no credentials: clients reach it without authentication
# (as the Go client does under STORAGE_EMULATOR_HOST).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bindir=$repo/.ci/bin
tmpdir=$repo/.ci/tmp
mod=github.com/fsouza/fake-gcs-server
version=${FAKE_GCS_SERVER_VERSION:-v1.56.1}
bin=$bindir/fake-gcs-server
stamp=$bindir/fake-gcs-server.version
last=$tmpdir/gcsserver.last

die() { echo "gcsserver: $*" >&2; exit 1; }

binversion() {
	go version -m "$bin" 2>/dev/null | awk -v mod="$mod" '$1 == "mod" && $2 == mod { print $3 }'
}

install() {
	if [[ -x $bin && -f $stamp && $(cat "$stamp") == "$version" ]]; then
		return 0
	fi
	command -v go >/dev/null || die "go is not on PATH; cannot install fake-gcs-server"
	mkdir -p "$bindir"
	if [[ -x $bin && $(binversion) == "$version" ]]; then
		echo "$version" >"$stamp"
		return 0
	fi
	echo "gcsserver: installing fake-gcs-server $version into $bindir" >&2
	rm -f "$stamp"
	local t0=$SECONDS
	GOBIN=$bindir go install "$mod@$version" >&2 || die "go install $mod@$version failed"
	[[ $(binversion) == "$version" ]] || die "installed fake-gcs-server reports version '$(binversion)', want $version"
	echo "$version" >"$stamp"
	echo "gcsserver: built fake-gcs-server in $((SECONDS - t0)) s" >&2
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

healthy() {
	curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/_internal/healthcheck" 2>/dev/null
}

start() {
	install
	command -v curl >/dev/null || die "curl is not on PATH"
	mkdir -p "$tmpdir"
	local dir port try i pid
	dir=$(mktemp -d "$tmpdir/gcsserver.XXXXXX")
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		port_free "$port" || continue
		"$bin" -backend memory -scheme http -host 127.0.0.1 -port "$port" \
			-public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" \
			-log-level warn >>"$dir/server.log" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$dir/pid"
		for i in $(seq 300); do
			kill -0 "$pid" 2>/dev/null || break
			if healthy "$port"; then
				echo "$dir" >"$last"
				cat <<-EOF
					export EBREPLICA_TEST_GCS_ENDPOINT=http://127.0.0.1:$port
					export EBREPLICA_TEST_GCS_REQUIRED=1
					export EBREPLICA_TEST_GCS_DIR=$dir
				EOF
				echo "gcsserver: fake-gcs-server $version (pid $pid) on http://127.0.0.1:$port" >&2
				return 0
			fi
			sleep 0.1
		done
		stop_pid "$pid"
		echo "gcsserver: attempt $try on port $port failed" >&2
	done
	echo "gcsserver: fake-gcs-server did not come up; log $dir/server.log:" >&2
	tail -n 30 "$dir/server.log" >&2 || true
	exit 1
}

# stop_pid PID: stop PID if it is fake-gcs-server, and wait for it.
stop_pid() {
	local pid=$1 i
	[[ -r /proc/$pid/cmdline ]] || return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$bin" || return 0
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop() {
	local dir=${1:-${EBREPLICA_TEST_GCS_DIR:-}}
	if [[ -z $dir && -f $last ]]; then
		dir=$(cat "$last")
	fi
	[[ -n $dir ]] || die "no emulator to stop (no DIR, EBREPLICA_TEST_GCS_DIR or $last)"
	[[ -d $dir ]] || { echo "gcsserver: $dir is gone; nothing to stop" >&2; return 0; }
	case $dir in
	"$tmpdir"/gcsserver.*) ;;
	*) die "refusing to stop $dir: not a state directory under $tmpdir" ;;
	esac
	[[ -f $dir/pid ]] && stop_pid "$(cat "$dir/pid")"
	rm -rf "$dir"
	if [[ -f $last && $(cat "$last") == "$dir" ]]; then
		rm -f "$last"
	fi
	echo "gcsserver: stopped the emulator of $dir" >&2
}

case ${1:-} in
install) install ;;
start) start ;;
stop) stop "${2:-}" ;;
*)
	echo "usage: $0 install | start | stop [DIR]" >&2
	exit 2
	;;
esac
