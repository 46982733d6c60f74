#!/usr/bin/env bash
# azserver.sh: the Azure Blob Storage emulator of the tests, Azurite (blob
# service only, in memory), run with the machine's Node.js.
#
#   scripts/azserver.sh install
#       install Azurite with npm into .ci/bin/azurite (a project-local
#       directory, git-ignored); does nothing when the pinned version is there
#   eval "$(scripts/azserver.sh start)"
#       start it on a free loopback port with a fresh account name and key,
#       and export
#         EBREPLICA_TEST_AZURE_ENDPOINT   http://127.0.0.1:PORT/ACCOUNT (the blob service URL)
#         EBREPLICA_TEST_AZURE_ACCOUNT    the account name
#         EBREPLICA_TEST_AZURE_KEY        the account key (shared key)
#         EBREPLICA_TEST_AZURE_REQUIRED   1 (a missing emulator fails the tests)
#         EBREPLICA_TEST_AZURE_DIR        its state directory (PID file, log)
#   scripts/azserver.sh stop [DIR]
#       stop the emulator started from DIR (default: EBREPLICA_TEST_AZURE_DIR,
#       else the last one started) and remove DIR
#
# Azurite 3.35.0 is the last release that runs on Node.js 20 (3.36 wants 21,
# 3.37 wants 22). It is started with --skipApiVersionCheck: the Azure SDK for
# Go speaks a newer service version than it knows.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bindir=$repo/.ci/bin
tmpdir=$repo/.ci/tmp
version=${AZURITE_VERSION:-3.35.0}
prefix=$bindir/azurite
main=$prefix/node_modules/azurite/dist/src/blob/main.js
stamp=$bindir/azurite.version
last=$tmpdir/azserver.last

die() { echo "azserver: $*" >&2; exit 1; }

installed_version() {
	node -p "require('$prefix/node_modules/azurite/package.json').version" 2>/dev/null
}

install() {
	if [[ -f $main && -f $stamp && $(cat "$stamp") == "$version" ]]; then
		return 0
	fi
	command -v node >/dev/null || die "node is not on PATH; cannot run Azurite"
	command -v npm >/dev/null || die "npm is not on PATH; cannot install Azurite"
	mkdir -p "$prefix"
	if [[ -f $main && $(installed_version) == "$version" ]]; then
		echo "$version" >"$stamp"
		return 0
	fi
	echo "azserver: installing azurite $version into $prefix" >&2
	rm -f "$stamp"
	local t0=$SECONDS
	(cd "$prefix" && npm install --no-audit --no-fund --omit=dev --loglevel=error "azurite@$version" >&2) ||
		die "npm install azurite@$version failed"
	[[ $(installed_version) == "$version" ]] || die "installed azurite reports version '$(installed_version)', want $version"
	echo "$version" >"$stamp"
	echo "azserver: installed azurite in $((SECONDS - t0)) s" >&2
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# healthy PORT: the blob service answers HTTP (any status: it has no health
# endpoint, and an unsigned request is refused).
healthy() {
	local code
	code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null) || true
	[[ -n $code && $code != 000 ]]
}

randhex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

start() {
	install
	command -v curl >/dev/null || die "curl is not on PATH"
	mkdir -p "$tmpdir"
	local dir port try i pid account key
	dir=$(mktemp -d "$tmpdir/azserver.XXXXXX")
	mkdir -p "$dir/data"
	account=ebr$(randhex 6)
	key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		port_free "$port" || continue
		# In the state directory: anything Azurite writes lands there.
		(cd "$dir/data" && AZURITE_ACCOUNTS="$account:$key" exec node "$main" \
			--blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
			--skipApiVersionCheck --disableTelemetry --disableProductStyleUrl --silent \
			>>"$dir/server.log" 2>&1 </dev/null) &
		pid=$!
		echo "$pid" >"$dir/pid"
		for i in $(seq 300); do
			kill -0 "$pid" 2>/dev/null || break
			if healthy "$port"; then
				echo "$dir" >"$last"
				cat <<-EOF
					export EBREPLICA_TEST_AZURE_ENDPOINT=http://127.0.0.1:$port/$account
					export EBREPLICA_TEST_AZURE_ACCOUNT=$account
					export EBREPLICA_TEST_AZURE_KEY=$key
					export EBREPLICA_TEST_AZURE_REQUIRED=1
					export EBREPLICA_TEST_AZURE_DIR=$dir
				EOF
				echo "azserver: azurite $version (pid $pid) on http://127.0.0.1:$port/$account" >&2
				return 0
			fi
			sleep 0.1
		done
		stop_pid "$pid"
		echo "azserver: attempt $try on port $port failed" >&2
	done
	echo "azserver: azurite did not come up; log $dir/server.log:" >&2
	tail -n 30 "$dir/server.log" >&2 || true
	exit 1
}

# stop_pid PID: stop PID if it is Azurite, and wait for it.
stop_pid() {
	local pid=$1 i
	[[ -r /proc/$pid/cmdline ]] || return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$main" || return 0
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop() {
	local dir=${1:-${EBREPLICA_TEST_AZURE_DIR:-}}
	if [[ -z $dir && -f $last ]]; then
		dir=$(cat "$last")
	fi
	[[ -n $dir ]] || die "no emulator to stop (no DIR, EBREPLICA_TEST_AZURE_DIR or $last)"
	[[ -d $dir ]] || { echo "azserver: $dir is gone; nothing to stop" >&2; return 0; }
	case $dir in
	"$tmpdir"/azserver.*) ;;
	*) die "refusing to stop $dir: not a state directory under $tmpdir" ;;
	esac
	[[ -f $dir/pid ]] && stop_pid "$(cat "$dir/pid")"
	rm -rf "$dir"
	if [[ -f $last && $(cat "$last") == "$dir" ]]; then
		rm -f "$last"
	fi
	echo "azserver: stopped the emulator of $dir" >&2
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
