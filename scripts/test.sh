#!/usr/bin/env bash
# The one test command (make test; .ci/run calls it): installs the S3 test
# servers (versitygw and MinIO) and the GCS and Azure Blob emulators
# (fake-gcs-server and Azurite) when missing, starts them on loopback, runs go
# vet and every test with the race detector, and stops them. Before that, the
# cross-compiles and the qemu-user runs of the ARM builds.
set -euo pipefail
cd "$(dirname "$0")/.."
go version
# The power-loss tests (internal/lazyfs, replica TestPowerLoss) mount a FUSE
# file system themselves: mount(2) as root on /dev/fuse, no fusermount needed.
# Without FUSE they skip, or under CI=true fail (never a silent skip in CI).
if [ ! -c /dev/fuse ] || [ "$(id -u)" != 0 ]; then
	echo "test.sh: no /dev/fuse or not root: the power-loss tests will $([ "${CI:-}" = true ] && echo fail || echo skip)" >&2
fi
# Every platform of the README's table cross-compiles; the linux/arm (32-bit)
# and linux/arm64 builds run under qemu-user, installed with apt-get when
# missing (issue 19; a skip with a message without apt, a failure under CI).
scripts/crossbuild.sh
scripts/qemu-test.sh
scripts/s3server.sh install # versitygw and minio
s3env=$(scripts/s3server.sh start) # a server that does not come up fails the run
eval "$s3env"
trap 'scripts/s3server.sh stop' EXIT # stops every server started here
s3env=$(scripts/s3server.sh start minio)
eval "$s3env"
# The GCS and Azure Blob emulators (fake-gcs-server, Azurite): installed into
# .ci/bin when missing, started on loopback, stopped on exit with the above.
scripts/gcsserver.sh install
scripts/azserver.sh install
scripts/chromium.sh install # headless Chromium for the inspector's browser test (issue 13)
trap 'scripts/s3server.sh stop
	[ -z "${EBREPLICA_TEST_GCS_DIR:-}" ] || scripts/gcsserver.sh stop
	[ -z "${EBREPLICA_TEST_AZURE_DIR:-}" ] || scripts/azserver.sh stop' EXIT
cloudenv=$(scripts/gcsserver.sh start) # an emulator that does not come up fails the run
eval "$cloudenv"
cloudenv=$(scripts/azserver.sh start)
eval "$cloudenv"
go vet ./...
go test -race -count=1 -timeout 75m ./...
