#!/usr/bin/env bash
# The one test command (make test; .ci/run calls it): installs the S3 test
# server (versitygw) when missing, starts it on loopback, runs go vet and every
# test with the race detector, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
go version
scripts/s3server.sh install
eval "$(scripts/s3server.sh start)"
trap 'scripts/s3server.sh stop' EXIT
go vet ./...
go test -race -count=1 -timeout 75m ./...
