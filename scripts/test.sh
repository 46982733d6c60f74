#!/usr/bin/env bash
# The one test command (make test; .ci/run calls it): installs the S3 test
# server (versitygw) when missing, starts it on loopback, runs go vet and every
# test with the race detector, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
go version
# The power-loss tests (internal/lazyfs, replica TestPowerLoss) mount a FUSE
# file system themselves: mount(2) as root on /dev/fuse, no fusermount needed.
# Without FUSE they skip, or under CI=true fail (never a silent skip in CI).
if [ ! -c /dev/fuse ] || [ "$(id -u)" != 0 ]; then
	echo "test.sh: no /dev/fuse or not root: the power-loss tests will $([ "${CI:-}" = true ] && echo fail || echo skip)" >&2
fi
scripts/s3server.sh install
eval "$(scripts/s3server.sh start)"
trap 'scripts/s3server.sh stop' EXIT
go vet ./...
go test -race -count=1 -timeout 75m ./...
