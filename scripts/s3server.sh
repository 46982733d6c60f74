#!/usr/bin/env bash
# s3server.sh: the local S3 servers of the tests, two implementations so that
# what one tolerates and real S3 refuses shows up:
#   versitygw  the Versity S3 gateway on a POSIX directory (the default)
#   minio      MinIO, one drive
#
#   scripts/s3server.sh install [SERVER...]
#       install the servers (default both) into .ci/bin, built from source
#       with the Go toolchain through the module proxy (idempotent)
#   eval "$(scripts/s3server.sh start [SERVER])"
#       start SERVER (default versitygw) on a free loopback port and export
#       its settings:
#         versitygw  EBREPLICA_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY,
#                    _REQUIRED=1, _DIR
#         minio      EBREPLICA_TEST_MINIO_ENDPOINT, _ACCESS_KEY, _SECRET_KEY,
#                    _REQUIRED=1, _DIR
#   scripts/s3server.sh stop [SERVER|DIR]
#       stop the server started from DIR, or the one SERVER's _DIR variable
#       names (else the last SERVER started); with no argument, every server
#       the _DIR variables name (else the last versitygw started)
#
# Each start gets its own state directory .ci/tmp/<server>.XXXXXX (PID file,
# log, data) and fresh random credentials, so parallel runs do not collide.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bindir=$repo/.ci/bin
tmpdir=$repo/.ci/tmp

die() { echo "s3server: $*" >&2; exit 1; }

# select SERVER: set the variables describing SERVER.
#   name pkg mod version bin stamp last state envp
select_server() {
	name=$1
	case $name in
	versitygw)
		mod=github.com/versity/versitygw
		pkg=$mod/cmd/versitygw
		version=${VERSITYGW_VERSION:-v1.8.0}
		state=s3server # state directories .ci/tmp/s3server.XXXXXX, as before
		envp=EBREPLICA_TEST_S3
		;;
	minio)
		mod=github.com/minio/minio
		pkg=$mod
		# MinIO tags its releases RELEASE.<date>, which Go does not take
		# for versions: pin the pseudo-version of a commit instead.
		version=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
		state=minio
		envp=EBREPLICA_TEST_MINIO
		;;
	*) die "unknown server '$name' (want versitygw or minio)" ;;
	esac
	bin=$bindir/$name
	stamp=$bindir/$name.version
	last=$tmpdir/$state.last
}

installed() {
	[[ -x $bin && -f $stamp && $(cat "$stamp") == "$version" ]]
}

# binversion: the module version recorded in the binary (its --version flag
# says "git" or a date for a go install build).
binversion() {
	go version -m "$bin" 2>/dev/null |
		awk -v mod="$mod" '$1 == "mod" && $2 == mod { print $3 }'
}

install_one() {
	select_server "$1"
	if installed; then
		return 0
	fi
	command -v go >/dev/null || die "go is not on PATH; cannot install $name"
	if [[ -x $bin && $(binversion) == "$version" ]]; then
		echo "$version" >"$stamp" # built before the stamp was written
		return 0
	fi
	echo "s3server: installing $name $version into $bindir" >&2
	mkdir -p "$bindir"
	rm -f "$stamp"
	local t0=$SECONDS
	GOBIN=$bindir go install "$pkg@$version" >&2 ||
		die "go install $pkg@$version failed"
	got=$(binversion)
	[[ $got == "$version" ]] || die "installed $name reports version '$got', want $version"
	echo "$version" >"$stamp"
	echo "s3server: built $name in $((SECONDS - t0)) s" >&2
}

install() {
	(($# > 0)) || set -- versitygw minio
	local s
	for s in "$@"; do
		install_one "$s"
	done
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# healthy PORT PATH: GET PATH answers 200.
healthy() {
	if command -v curl >/dev/null; then
		curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1$2" 2>/dev/null
		return
	fi
	local line
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
	read -r -t 1 line <&3 || true
	exec 3>&-
	[[ $line == *" 200"* ]]
}

randhex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# launch DIR ACCESS SECRET PORT: start the selected server in the
# background, set pid and health (the path answering 200 once it is up).
launch() {
	local dir=$1 access=$2 secret=$3 port=$4
	case $name in
	versitygw)
		"$bin" --access "$access" --secret "$secret" --port "127.0.0.1:$port" \
			--health /health --quiet posix "$dir/data" \
			>>"$dir/server.log" 2>&1 </dev/null &
		pid=$!
		health=/health
		;;
	minio)
		# No console, no update check, certificates (none) looked up in
		# the state directory rather than ~/.minio.
		MINIO_ROOT_USER=$access MINIO_ROOT_PASSWORD=$secret \
			MINIO_BROWSER=off MINIO_UPDATE=off \
			"$bin" server --address "127.0.0.1:$port" --certs-dir "$dir/certs" \
			--quiet --anonymous "$dir/data" \
			>>"$dir/server.log" 2>&1 </dev/null &
		pid=$!
		health=/minio/health/ready
		;;
	esac
}

start() {
	select_server "${1:-versitygw}"
	install_one "$name"
	mkdir -p "$tmpdir"
	local dir access secret port try i
	dir=$(mktemp -d "$tmpdir/$state.XXXXXX")
	mkdir -p "$dir/data"
	access=EBR$(randhex 8 | tr a-f A-F)
	secret=$(randhex 20)
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		port_free "$port" || continue
		launch "$dir" "$access" "$secret" "$port"
		echo "$pid" >"$dir/pid"
		for i in $(seq 300); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break # exited, e.g. the port was taken meanwhile: next try
			fi
			if healthy "$port" "$health"; then
				echo "$dir" >"$last"
				cat <<-EOF
					export ${envp}_ENDPOINT=http://127.0.0.1:$port
					export ${envp}_ACCESS_KEY=$access
					export ${envp}_SECRET_KEY=$secret
					export ${envp}_REQUIRED=1
					export ${envp}_DIR=$dir
				EOF
				echo "s3server: $name $version (pid $pid) on http://127.0.0.1:$port, data in $dir/data" >&2
				return 0
			fi
			sleep 0.1
		done
		stop_pid "$pid"
		echo "s3server: attempt $try on port $port failed" >&2
	done
	echo "s3server: $name did not come up; log $dir/server.log:" >&2
	tail -n 30 "$dir/server.log" >&2 || true
	exit 1
}

# stop_pid PID: stop PID if it is the selected server's process, wait for it
# to exit.
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

# stop_dir DIR: stop the server of state directory DIR and remove DIR.
stop_dir() {
	local dir=$1
	[[ -d $dir ]] || { echo "s3server: $dir is gone; nothing to stop" >&2; return 0; }
	case $dir in
	"$tmpdir"/s3server.*) select_server versitygw ;;
	"$tmpdir"/minio.*) select_server minio ;;
	*) die "refusing to stop $dir: not a state directory under $tmpdir" ;;
	esac
	if [[ -f $dir/pid ]]; then
		stop_pid "$(cat "$dir/pid")"
	fi
	rm -rf "$dir"
	if [[ -f $last && $(cat "$last") == "$dir" ]]; then
		rm -f "$last"
	fi
	echo "s3server: stopped the $name server of $dir" >&2
}

# dir_of SERVER: the state directory its _DIR variable names, else the last
# one started, else "".
dir_of() {
	select_server "$1"
	local v=${envp}_DIR
	if [[ -n ${!v:-} ]]; then
		echo "${!v}"
	elif [[ -f $last ]]; then
		cat "$last"
	fi
}

stop() {
	local arg=${1:-} dir
	case $arg in
	versitygw | minio)
		dir=$(dir_of "$arg")
		[[ -n $dir ]] || die "no $arg server to stop (no ${envp}_DIR or $last)"
		stop_dir "$dir"
		;;
	"")
		local any=
		if [[ -n ${EBREPLICA_TEST_S3_DIR:-} ]]; then
			stop_dir "$EBREPLICA_TEST_S3_DIR"
			any=1
		fi
		if [[ -n ${EBREPLICA_TEST_MINIO_DIR:-} ]]; then
			stop_dir "$EBREPLICA_TEST_MINIO_DIR"
			any=1
		fi
		if [[ -z $any ]]; then
			dir=$(dir_of versitygw)
			[[ -n $dir ]] || die "no server to stop (no DIR, EBREPLICA_TEST_S3_DIR, EBREPLICA_TEST_MINIO_DIR or $last)"
			stop_dir "$dir"
		fi
		;;
	*) stop_dir "$arg" ;;
	esac
}

case ${1:-} in
install) shift; install "$@" ;;
start) start "${2:-}" ;;
stop) stop "${2:-}" ;;
*)
	echo "usage: $0 install [versitygw|minio...] | start [versitygw|minio] | stop [versitygw|minio|DIR]" >&2
	exit 2
	;;
esac
