#!/usr/bin/env bash
# Checks the HTTP API against its own OpenAPI document, on the real binary:
#
#  1. a Python client generated from the served document (openapi-python-client) calls every
#     route and checks the answers (scripts/fuzz/client_check.py);
#  2. schemathesis fuzzes every operation of the document with every check on: positive and
#     negative data, the examples, coverage, fuzzing and stateful phases, a fixed seed.
#
# Usage: scripts/fuzz_api.sh PATH_TO_HOLIDAPP_API
#
# The server runs in memory (no Redis) on a free port of 127.0.0.1, with its embedded workers.
# The tools live in a virtualenv under ${CARGO_TARGET_DIR:-target}/fuzz-venv, installed from
# scripts/fuzz/requirements.txt the first time (or when that file changes); later runs need no
# network. The reports of the last run are kept in ${CARGO_TARGET_DIR:-target}/fuzz-report.
#
# Settings (environment): FUZZ_SEED (default 20261201), FUZZ_MAX_EXAMPLES (test cases per
# operation, default 500), FUZZ_SKIP_CLIENT=1 or FUZZ_SKIP_SCHEMATHESIS=1 to run one
# half only, PYTHON (the interpreter the virtualenv is made with, default python3).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

if [ $# -ne 1 ]; then
    echo "usage: $0 PATH_TO_HOLIDAPP_API" >&2
    exit 2
fi
bin=$1
if [ ! -x "$bin" ]; then
    echo "fuzz_api.sh: $bin is not an executable" >&2
    exit 2
fi
case "$bin" in
/*) ;;
*) bin="$PWD/$bin" ;;
esac

cd "$(dirname "$0")/.."
repo=$PWD
here="$repo/scripts/fuzz"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in
/*) ;;
*) target="$repo/$target" ;;
esac
venv="$target/fuzz-venv"
report="$target/fuzz-report"
seed="${FUZZ_SEED:-20261201}"
examples="${FUZZ_MAX_EXAMPLES:-500}"
started=$SECONDS

# --- the tools ---------------------------------------------------------------------------------
requirements="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "fuzz_api.sh: installing the tools into $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
fi

# --- the server --------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/holidapp-fuzz.XXXXXX")
server_pid=""
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A clean environment: no Redis (so everything is in memory, with embedded workers), no setting
# of the caller's; the workers store a 1x1 PNG for each plot job (the API still checks every job
# with the real plot kind, and POST /image renders for real).
env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
    LOG_LEVEL=info \
    VISITS_LOG="$work/visits.log" \
    DATA_SOURCE=bundled:hgnc \
    HOLIDAPP_RENDERER=noop \
    HOLIDAPP_SHUTDOWN_GRACE_SECONDS=2 \
    "$bin" --bind 127.0.0.1:0 >"$work/server.out" 2>"$work/server.log" &
server_pid=$!

base=""
deadline=$((SECONDS + 60))
while [ -z "$base" ]; do
    base=$(sed 's/\x1b\[[0-9;]*m//g' "$work/server.log" | grep -aoE 'listening on http://[^ ]+' | head -n1 | sed 's/^listening on //' || true)
    if [ -n "$base" ]; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "fuzz_api.sh: the server exited before listening:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "fuzz_api.sh: the server did not log 'listening on' within 60 s:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.05
done
echo "fuzz_api.sh: $bin listening on $base" >&2
"$venv/bin/python" - "$base/openapi.json" "$work/openapi.json" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as answer, open(sys.argv[2], "wb") as out:
    out.write(answer.read())
EOF

failed=0

# --- 1. a generated client calls every route -------------------------------------------------
if [ "${FUZZ_SKIP_CLIENT:-0}" != 1 ]; then
    cat >"$work/generator.yaml" <<'EOF'
project_name_override: holidapp-client
package_name_override: holidapp_client
post_hooks: []
EOF
    echo "== openapi-python-client: generating a client from $base/openapi.json" >&2
    if "$venv/bin/openapi-python-client" generate --path "$work/openapi.json" \
        --output-path "$work/holidapp_client" --meta none --config "$work/generator.yaml" \
        >"$work/generate.log" 2>&1; then
        # What the generator left out (an operation, a response, a body type) is printed; the
        # client check below fails on whatever that makes it unable to do.
        grep -aA2 '^WARNING' "$work/generate.log" | grep -av '^--$' | grep -av '^$' >&2 || true
        site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        rm -rf "$site/holidapp_client"
        cp -r "$work/holidapp_client" "$site/holidapp_client"
        echo "== client check: every route through the generated client" >&2
        if ! (cd "$work" && "$venv/bin/python" "$here/client_check.py" "$base" "$work/openapi.json" holidapp_client); then
            failed=1
        fi
    else
        cat "$work/generate.log" >&2
        echo "fuzz_api.sh: openapi-python-client cannot generate a client from the document" >&2
        failed=1
    fi
fi

# --- 2. schemathesis ---------------------------------------------------------------------------
if [ "${FUZZ_SKIP_SCHEMATHESIS:-0}" != 1 ]; then
    rm -rf "$report"
    mkdir -p "$report"
    echo "== schemathesis: $base/openapi.json, seed $seed, at most $examples examples per operation" >&2
    status=0
    (cd "$work" && SCHEMATHESIS_HOOKS="$here/hooks.py" "$venv/bin/schemathesis" \
        --config-file "$here/schemathesis.toml" --no-color run "$base/openapi.json" \
        --checks all \
        --mode all \
        --phases examples,coverage,fuzzing,stateful \
        --max-examples "$examples" \
        --seed "$seed" \
        --workers 1 \
        --continue-on-failure \
        --request-timeout 60 \
        --report junit,ndjson,json \
        --report-dir "$report" \
        --report-json-path "$report/run.json") || status=$?
    "$venv/bin/python" - "$report/run.json" "$status" <<'EOF' || true
import json, sys
try:
    run = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print(f"schemathesis: no run report (exit code {sys.argv[2]})")
    sys.exit(0)
cases = run.get("test_cases", {})
print(f"schemathesis: {cases.get('generated', 0)} test cases run, "
      f"{cases.get('unique_failures', 0)} unique failures, {len(run.get('errors', []))} errors "
      f"(exit code {sys.argv[2]})")
EOF
    if [ "$status" -ne 0 ]; then
        failed=1
        echo "fuzz_api.sh: schemathesis reports failures; its reports are in $report; every failing" >&2
        echo "  request, grouped: $venv/bin/python scripts/fuzz/failures.py $report/ndjson-*.ndjson" >&2
        if grep -aq ' ERROR ' "$work/server.log"; then
            echo "fuzz_api.sh: the server logged errors:" >&2
            grep -a ' ERROR ' "$work/server.log" | tail -n 20 >&2
        fi
    fi
fi

stop_server
echo "fuzz_api.sh: done in $((SECONDS - started)) s" >&2
exit "$failed"
