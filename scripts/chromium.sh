#!/usr/bin/env bash
# Chromium for the inspector page's headless browser test (issue 13,
# internal/server/inspector), from Debian's package.
#
#   scripts/chromium.sh install    install /usr/bin/chromium when missing
#
# The install runs `apt-get install` first and `apt-get update` only when that
# fails. Without apt-get or root, or when the install fails, it warns and the
# browser test skips with a message, except under CI=true, where the script
# exits non-zero (never a silent skip in CI).
set -euo pipefail

ci=false
[ "${CI:-}" = true ] && ci=true

bin=/usr/bin/chromium

give_up() {
	if $ci; then
		echo "chromium.sh: $1 (CI=true: failing)" >&2
		exit 1
	fi
	echo "chromium.sh: $1: the inspector's browser test will skip" >&2
	exit 0
}

install() {
	if [ -x "$bin" ]; then
		echo "chromium.sh: $bin is installed ($("$bin" --version 2>/dev/null || echo 'version unknown'))" >&2
		return 0
	fi
	if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
		give_up "$bin is missing and apt-get (as root) is not available"
	fi
	export DEBIAN_FRONTEND=noninteractive
	echo "chromium.sh: apt-get install -y --no-install-recommends chromium" >&2
	if ! apt-get install -y -q --no-install-recommends chromium >&2; then
		echo "chromium.sh: the install failed; apt-get update, then again" >&2
		apt-get update -q >&2 &&
			apt-get install -y -q --no-install-recommends chromium >&2 ||
			give_up "apt-get could not install chromium"
	fi
	[ -x "$bin" ] || give_up "apt-get installed chromium but $bin is missing"
	echo "chromium.sh: installed $("$bin" --version 2>/dev/null || echo "$bin")" >&2
}

case "${1:-}" in
install) install ;;
*)
	echo "usage: scripts/chromium.sh install" >&2
	exit 2
	;;
esac
