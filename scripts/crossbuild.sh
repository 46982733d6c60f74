#!/usr/bin/env bash
# Cross-compiles the CLI for every platform in the README's table "Platforms"
# (its rows start with | `GOOS/GOARCH`), with CGO disabled as a release
# would; linux/arm as GOARM=7. Called by scripts/test.sh; fails on the first
# platform that does not build, or when the README lists none.
set -euo pipefail
cd "$(dirname "$0")/.."
platforms=$(sed -n '/^## Platforms/,/^## /p' README.md | sed -n 's/^| `\([a-z0-9]*\/[a-z0-9]*\)`.*/\1/p')
[ -n "$platforms" ] || { echo "crossbuild: no platforms found in README.md \"## Platforms\"" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/ebreplica-cross.XXXXXX")
trap 'rm -rf "$out"' EXIT
for p in $platforms; do
	goos=${p%/*} goarch=${p#*/} goarm=
	[ "$goarch" = arm ] && goarm=7
	start=$SECONDS
	GOOS=$goos GOARCH=$goarch GOARM=$goarm CGO_ENABLED=0 go build -o "$out/ebreplica-$goos-$goarch" ./cmd/ebreplica
	echo "crossbuild: $p${goarm:+ (GOARM=$goarm)} ok ($((SECONDS - start)) s)"
done
