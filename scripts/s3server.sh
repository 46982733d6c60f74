#!/usr/bin/env bash
# s3server.sh: a local S3 server for the tests (the Versity S3 gateway,
# versitygw, on a POSIX directory).
#
#   scripts/s3server.sh install        install versitygw into .ci/bin (idempotent)
#   eval "$(scripts/s3server.sh start)" start a server, export its settings:
#                                        EBREPLICA_TEST_S3_ENDPOINT, _ACCESS_KEY,
#                                        _SECRET_KEY, _REQUIRED=1, _DIR
#   scripts/s3server.sh stop [DIR]     stop the server started from DIR
#                                        (default $EBREPLICA_TEST_S3_DIR, else
#                                        the last one started)
#
# Each start gets its own state directory .ci/tmp/s3server.XXXXXX (PID file,
# log, data) and fresh random credentials, so parallel runs do not collide.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=${VERSITYGW_VERSION:-v1.8.0}
bindir=$repo/.ci/bin
bin=$bindir/versitygw
stamp=$bindir/versitygw.version
tmpdir=$repo/.ci/tmp
last=$tmpdir/s3server.last

die() { echo "s3server: $*" >&2; exit 1; }

installed() {
	[[ -x $bin && -f $stamp && $(cat "$stamp") == "$version" ]]
}

# binversion: the module version recorded in the binary (its --version flag
# says "git" for a go install build).
binversion() {
	go version -m "$bin" 2>/dev/null |
		awk '$1 == "mod" && $2 == "github.com/versity/versitygw" { print $3 }'
}

install() {
	if installed; then
		return 0
	fi
	command -v go >/dev/null || die "go is not on PATH; cannot install versitygw"
	if [[ -x $bin && $(binversion) == "$version" ]]; then
		echo "$version" >"$stamp" # built before the stamp was written
		return 0
	fi
	echo "s3server: installing versitygw $version into $bindir" >&2
	mkdir -p "$bindir"
	rm -f "$stamp"
	GOBIN=$bindir go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2 ||
		die "go install github.com/versity/versitygw/cmd/versitygw@$version failed"
	got=$(binversion)
	[[ $got == "$version" ]] || die "installed versitygw reports version '$got', want $version"
	echo "$version" >"$stamp"
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# healthy PORT: GET /health answers 200.
healthy() {
	if command -v curl >/dev/null; then
		curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/health" 2>/dev/null
		return
	fi
	local line
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	read -r -t 1 line <&3 || true
	exec 3>&-
	[[ $line == *" 200"* ]]
}

randhex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

start() {
	install
	mkdir -p "$tmpdir"
	local dir access secret port pid try i
	dir=$(mktemp -d "$tmpdir/s3server.XXXXXX")
	mkdir -p "$dir/data"
	access=EBR$(randhex 8 | tr a-f A-F)
	secret=$(randhex 20)
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		port_free "$port" || continue
		"$bin" --access "$access" --secret "$secret" --port "127.0.0.1:$port" \
			--health /health --quiet posix "$dir/data" \
			>>"$dir/server.log" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$dir/pid"
		for i in $(seq 100); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break # exited, e.g. the port was taken meanwhile: next try
			fi
			if healthy "$port"; then
				echo "$dir" >"$last"
				cat <<-EOF
					export EBREPLICA_TEST_S3_ENDPOINT=http://127.0.0.1:$port
					export EBREPLICA_TEST_S3_ACCESS_KEY=$access
					export EBREPLICA_TEST_S3_SECRET_KEY=$secret
					export EBREPLICA_TEST_S3_REQUIRED=1
					export EBREPLICA_TEST_S3_DIR=$dir
				EOF
				echo "s3server: versitygw $version (pid $pid) on http://127.0.0.1:$port, data in $dir/data" >&2
				return 0
			fi
			sleep 0.1
		done
		stop_pid "$pid"
		echo "s3server: attempt $try on port $port failed" >&2
	done
	echo "s3server: versitygw did not come up; log $dir/server.log:" >&2
	tail -n 30 "$dir/server.log" >&2 || true
	exit 1
}

# stop_pid PID: stop PID if it is a versitygw process, wait for it to exit.
stop_pid() {
	local pid=$1 i
	[[ -r /proc/$pid/cmdline ]] || return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q versitygw || return 0
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop() {
	local dir=${1:-${EBREPLICA_TEST_S3_DIR:-}}
	if [[ -z $dir && -f $last ]]; then
		dir=$(cat "$last")
	fi
	[[ -n $dir ]] || die "no server to stop (no DIR, EBREPLICA_TEST_S3_DIR or $last)"
	[[ -d $dir ]] || { echo "s3server: $dir is gone; nothing to stop" >&2; return 0; }
	case $dir in
	"$tmpdir"/s3server.*) ;;
	*) die "refusing to stop $dir: not a state directory under $tmpdir" ;;
	esac
	if [[ -f $dir/pid ]]; then
		stop_pid "$(cat "$dir/pid")"
	fi
	rm -rf "$dir"
	if [[ -f $last && $(cat "$last") == "$dir" ]]; then
		rm -f "$last"
	fi
	echo "s3server: stopped the server of $dir" >&2
}

case ${1:-} in
install) install ;;
start) start ;;
stop) stop "${2:-}" ;;
*)
	echo "usage: $0 install|start|stop [DIR]" >&2
	exit 2
	;;
esac
