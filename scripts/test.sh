#!/usr/bin/env bash
# Runs the whole test suite, doing its own set-up: the Redis-backed tests start their own
# `redis-server` processes, a process test shifts a worker's clock with libfaketime, and the
# dashboard's test drives a headless Chromium, so all must be installed; they are, with apt-get,
# when missing. The API fuzzing harness
# (scripts/fuzz_api.sh) needs python3 with its venv module.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
# The dashboard's browser test drives Debian's Chromium through its WebDriver, chromedriver.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "scripts/test.sh: installing ${missing[*]} with apt-get" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The engine alone: with default features off, holidapp-core pulls in no plotting library, no
# HTTP client and no Redis client; and its package holds every file it needs.
lean=$(cargo tree -p holidapp-core --no-default-features -e normal --prefix none)
for heavy in plotters reqwest redis; do
    if grep -q "^$heavy v" <<<"$lean"; then
        echo "scripts/test.sh: holidapp-core without default features depends on $heavy" >&2
        exit 1
    fi
done
packaged=$(cargo package -p holidapp-core --list --allow-dirty)
for needed in src/redis_backend/lua/lease.lua src/plot/lua/data_swap.lua \
    assets/DejaVuSans.ttf data/hgnc_reduced_set.txt data/ML_Data_Sample.json; do
    if ! grep -qx "$needed" <<<"$packaged"; then
        echo "scripts/test.sh: the holidapp-core package lacks $needed" >&2
        exit 1
    fi
done

# Process-level tests start the real binaries of both crates: build them all first.
cargo build --workspace --bins
target="${CARGO_TARGET_DIR:-target}"

# The HTTP API against its own OpenAPI document, on the real binary: a client generated from the
# document calls every route, and schemathesis fuzzes every operation with every check on. The
# Python tools are installed into a virtualenv under the target directory the first time.
bash scripts/fuzz_api.sh "$target/debug/holidapp-api"

# The deployment manifests and compose file: rendered, validated against the Kubernetes schemas,
# and checked against the variables the binaries accept. It installs the tools it needs (kubectl
# included), which the manifest-driven test below uses too.
bash deploy/check.sh "$target/debug/holidapp-api" "$target/debug/holidapp-worker"

cargo test --workspace "$@"
