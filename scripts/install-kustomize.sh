#!/usr/bin/env bash
# Install kustomize into <repo>/.tools/bin (gitignored), built from source via
# the Go module proxy, for test/deploy/manifests.test.ts. Idempotent: does
# nothing when the pinned version is already there.
#
#   scripts/install-kustomize.sh            # -> .tools/bin/kustomize
#   KUSTOMIZE_VERSION=v5.8.1 scripts/install-kustomize.sh
#
# Pinned to v5.8.2: v5.8.3 requires Go >= 1.27. Needs Go >= 1.26 (v5.8.1 works
# with Go >= 1.24). Takes ~20-30s with a cold module cache on 2 cores.
set -euo pipefail

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${KUSTOMIZE_INSTALL_DIR:-$repo_root/.tools/bin}"
bin="$bin_dir/kustomize"

if [[ -x "$bin" ]] && [[ "$("$bin" version 2>/dev/null || true)" == "$KUSTOMIZE_VERSION" ]]; then
  echo "kustomize $KUSTOMIZE_VERSION already installed at $bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-kustomize: 'go' not found on PATH (need Go >= 1.26)" >&2
  exit 1
fi

mkdir -p "$bin_dir"
echo "installing kustomize $KUSTOMIZE_VERSION into $bin_dir ($(go version))"
# GOTOOLCHAIN=local: fail clearly instead of trying to download a newer Go
# toolchain if the pinned version ever needs one.
GOBIN="$bin_dir" GOTOOLCHAIN=local GOFLAGS=-mod=mod \
  go install "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"

"$bin" version
