#!/usr/bin/env bash
# Build the grpc-go proxyless test client (test/support/grpc-go-client) into
# <repo>/.tools/bin/grpc-go-client, for test/e2e/proxyless-grpc-go.test.ts.
# Modules come through the Go module proxy (go.sum pins them); Go's module and
# build caches make a rebuild cheap. Idempotent: skips the build when the
# binary is newer than the client's sources.
#
#   scripts/build-grpc-go-client.sh
#
# Needs Go >= 1.26. Cold (empty caches, 2 cores): a few minutes; warm: seconds.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$repo_root/test/support/grpc-go-client"
bin_dir="${GRPC_GO_CLIENT_INSTALL_DIR:-$repo_root/.tools/bin}"
bin="$bin_dir/grpc-go-client"

if [[ -x "$bin" ]] && [[ -z "$(find "$src" -newer "$bin" -type f)" ]]; then
  echo "grpc-go-client is up to date at $bin"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-grpc-go-client: 'go' not found on PATH (need Go >= 1.26)" >&2
  exit 1
fi

mkdir -p "$bin_dir"
echo "building grpc-go-client into $bin ($(go version))"
# GOTOOLCHAIN=local: fail clearly rather than download another toolchain.
# -mod=readonly: build exactly what go.sum pins.
(cd "$src" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go build -trimpath -o "$bin.tmp" .)
mv "$bin.tmp" "$bin"
echo "built $bin"
