#!/usr/bin/env bash
# Runs the whole test suite, doing its own set-up: the Redis-backed tests start their own
# `redis-server` processes, so the binary must be installed; it is, with apt-get, when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "scripts/test.sh: redis-server not found; installing it with apt-get" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

# Process-level tests start the real binaries of both crates: build them all first.
cargo build --workspace --bins

# The deployment manifests and compose file: rendered, validated against the Kubernetes schemas,
# and checked against the variables the binaries accept. It installs the tools it needs (kubectl
# included), which the manifest-driven test below uses too.
target="${CARGO_TARGET_DIR:-target}"
bash deploy/check.sh "$target/debug/holidapp-api" "$target/debug/holidapp-worker"

cargo test --workspace "$@"
