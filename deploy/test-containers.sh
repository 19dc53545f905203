#!/usr/bin/env bash
# Builds the images from deploy/Dockerfile and runs deploy/compose.yaml for real, with podman and
# podman-compose, then checks what the course's users do through the published port:
#
#   1. images: both targets (runtime and debug) build from vendored crates; the runtime image runs
#      as a non-root user, both binaries answer --help, no build tool (cargo, rustc, gcc, ...) is
#      in it; the debug image has curl, jq and redis-cli; their sizes are printed;
#   2. the compose stack, as the file is: Redis, the API on port 5000 and two worker containers;
#      POST /data, jobs submitted and completed, their results PNG, shared by both workers (two
#      distinct `worker` values, each a worker container's own address);
#   3. a worker container killed with SIGKILL while it holds jobs: they run again elsewhere, none
#      is lost;
#   4. Redis killed with SIGKILL while the workers drain jobs, then started again: every job the
#      API acknowledged is still there and completes, and the data set is still loaded;
#   5. the visits log survives a new API container on the same volume;
#   6. the debug image, on the compose network, reaches the API and Redis by their service names.
#
# Everything it starts (containers, volumes, network) is removed when it exits, whatever happens.
# It exits non-zero on any failure, after printing the containers' logs.
#
# Usage (as root: it installs packages and runs rootful podman):
#
#   bash deploy/test-containers.sh
#
# Needs cargo on PATH (for `cargo vendor`; the Rust stand-in below copies its toolchain). What it
# installs when missing: podman (with the runc runtime), iptables, debootstrap, curl and jq with
# apt-get; the CNI dnsname plugin, so containers find each other by service name; podman-compose
# from PyPI in a virtualenv under the target directory. On a machine where podman has no storage
# yet it selects the vfs storage driver (it works wherever the root file system is; overlay does
# not on every machine), and it sets podman's default ulimits (nofile, nproc) below podman's own
# defaults, which some machines' hard limits refuse, in /etc/containers/containers.conf.d/.
#
# Base images: debian:bookworm-slim, rust:1-slim-bookworm and redis:7 are pulled; when a pull
# fails (no registry reachable), a local stand-in is made under the same name instead:
# debian:bookworm-slim with `debootstrap --variant=minbase bookworm`, rust:1-slim-bookworm from
# it with gcc, libc6-dev and this machine's own Rust toolchain, redis:7 from it with Debian's
# redis-server, started with `--protected-mode no` as the official image does. Stand-ins are
# kept for the next run (and replaced by the real image once a pull succeeds).
#
# The build reads every crate from vendor/ (`cargo vendor`, on this machine; the Dockerfile's
# VENDORED=1), so containers need no access to the crate registry; they do need Debian's package
# mirror, for the apt-get lines of the Dockerfile. The vendor/ folder is removed afterwards when
# this script made it. The builder stage is kept as holidapp-builder:cache, so that a second run
# reuses it; at exit `podman image prune` removes the untagged layers of earlier builds (vfs
# storage keeps a whole copy of the file system per layer).
#
# Environment: HOLIDAPP_TEST_PROJECT (compose project name, default holidapp-test),
# DEBIAN_MIRROR (for debootstrap, default http://deb.debian.org/debian), PYTHON (default python3).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

project="${HOLIDAPP_TEST_PROJECT:-holidapp-test}"
compose_file="deploy/compose.yaml"
tools="${CARGO_TARGET_DIR:-$repo/target}/deploy-tools"
python="${PYTHON:-python3}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
podman_compose_version="1.6.0"
api="http://127.0.0.1:5000"
debug_image="holidapp-debug:0.1.0"
debug_container="$project-debug"
started=$SECONDS

say() { printf '== [%4ss] %s\n' "$((SECONDS - started))" "$*"; }
fail() { printf 'deploy/test-containers.sh: FAILED: %s\n' "$*" >&2; exit 1; }

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every half second until it succeeds; fails the
# test once SECONDS have passed.
wait_until() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "timed out after ${limit}s waiting for $what"
        fi
        sleep 0.5
    done
}

[ "$(id -u)" -eq 0 ] || fail "run it as root (sudo bash deploy/test-containers.sh): it installs packages and runs rootful podman"

# ---- tools ---------------------------------------------------------------------------------------

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    say "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# The CNI bridge and port-mapping plugins set up NAT with iptables, which podman only suggests.
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# runc: crun (podman's first choice) refuses the cgroup set-up of some machines. The ulimits: by
# default podman gives containers nofile=1048576, above the hard limit of some machines, where
# then no container starts.
conf=/etc/containers/containers.conf.d/holidapp-test.conf
if ! [ -f "$conf" ]; then
    say "configuring podman: runc, default ulimits ($conf)"
    mkdir -p "$(dirname "$conf")"
    cat >"$conf" <<'EOF'
# Written by Holidapp's deploy/test-containers.sh; delete it to get podman's defaults back.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
fi
# vfs: only where podman has no storage yet (an existing store keeps its driver).
if ! [ -f /etc/containers/storage.conf ] && ! [ -d /var/lib/containers/storage/libpod ]; then
    say "configuring podman: vfs storage (/etc/containers/storage.conf)"
    cat >/etc/containers/storage.conf <<'EOF'
# Written by Holidapp's deploy/test-containers.sh: vfs works on any root file system.
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
fi
podman info >/dev/null || fail "podman does not work here (podman info failed)"

# Service names resolve on a compose network through podman's DNS: the dnsname plugin with CNI,
# aardvark-dns with netavark.
case "$(podman info --format '{{.Host.NetworkBackend}}')" in
    cni) [ -x /usr/lib/cni/dnsname ] || apt_install golang-github-containernetworking-plugin-dnsname ;;
    netavark) [ -x /usr/lib/podman/aardvark-dns ] || command -v aardvark-dns >/dev/null 2>&1 || apt_install aardvark-dns ;;
esac

venv="$tools/podman-compose"
podman_compose="$venv/bin/podman-compose"
if ! [ -x "$podman_compose" ] || [ "$("$venv/bin/python" -m pip show podman-compose 2>/dev/null | sed -n 's/^Version: //p')" != "$podman_compose_version" ]; then
    say "installing podman-compose $podman_compose_version from PyPI into $venv"
    if ! "$python" -m venv --help >/dev/null 2>&1; then apt_install python3-venv; fi
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "podman-compose==$podman_compose_version" \
        || fail "pip install podman-compose failed"
fi
compose() { "$podman_compose" -p "$project" -f "$compose_file" "$@"; }

# ---- clean-up, whatever happens ------------------------------------------------------------------

work="$(mktemp -d)"
made_vendor=""
stack_up=""
export REDIS_PASSWORD
REDIS_PASSWORD="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"

project_containers() { podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}'; }

# teardown: removes the project's containers, volumes and network (and the debug container).
teardown() {
    podman rm -f -t 0 "$debug_container" >/dev/null 2>&1
    compose down -v -t 5 >/dev/null 2>&1
    # Whatever `down` left behind.
    for c in $(project_containers); do podman rm -f -t 0 "$c" >/dev/null 2>&1; done
    for v in $(podman volume ls -q --filter "label=io.podman.compose.project=$project"); do
        podman volume rm -f "$v" >/dev/null 2>&1
    done
    for n in $(podman network ls -q --filter "label=io.podman.compose.project=$project"); do
        podman network rm -f "$n" >/dev/null 2>&1
    done
    return 0
}

cleanup() {
    local rc=$?
    set +e
    if [ "$rc" -ne 0 ] && [ -n "$stack_up" ]; then
        for c in $(project_containers); do
            printf '\n---- last lines of the log of %s\n' "$c" >&2
            podman logs --tail 30 "$c" >&2 2>&1
        done
    fi
    if [ -n "$stack_up" ]; then
        say "tearing down the stack, volumes included"
        teardown
    fi
    # Layers of earlier builds that no image uses any more.
    podman image prune -f >/dev/null 2>&1
    [ -n "$made_vendor" ] && rm -rf "$repo/vendor"
    rm -rf "$work"
    if [ "$rc" -eq 0 ]; then
        say "container test passed in $((SECONDS - started))s"
    else
        printf 'deploy/test-containers.sh: failed after %ss\n' "$((SECONDS - started))" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- base images: pulled, or stand-ins made here -----------------------------------------------

standin_label="io.holidapp.stand-in"

# pull NAME: pulls the real image, unless it is here already (and is not a stand-in).
pull() {
    local name=$1
    if podman image exists "$name"; then
        [ -z "$(podman image inspect --format "{{index .Labels \"$standin_label\"}}" "$name")" ] && return 0
    fi
    timeout 120 podman pull -q "$name" >/dev/null 2>&1
}

make_debian() {
    say "making a stand-in for debian:bookworm-slim with debootstrap (from $mirror)"
    local root="$work/rootfs"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
    # As the official image: the same package sources, no documentation, apt's caches emptied.
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
    tar --numeric-owner -C "$root" -c . \
        | podman import -q --change 'CMD ["bash"]' --change "LABEL $standin_label=debootstrap" \
            - docker.io/library/debian:bookworm-slim >/dev/null
    rm -rf "$root"
}

make_rust() {
    local sysroot version
    sysroot="$(rustc --print sysroot)"
    version="$(rustc --version)"
    say "making a stand-in for rust:1-slim-bookworm with this machine's toolchain ($version)"
    local ctx="$work/rust"
    mkdir -p "$ctx/toolchain/bin"
    cp "$sysroot/bin/cargo" "$sysroot/bin/rustc" "$ctx/toolchain/bin/"
    cp -a "$sysroot/lib" "$ctx/toolchain/"
    rm -rf "$ctx/toolchain/lib/rustlib/src"
    cat >"$ctx/Containerfile" <<EOF
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
    && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/rust
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL $standin_label="$version"
EOF
    podman build -q --pull=never -t docker.io/library/rust:1-slim-bookworm "$ctx" >/dev/null \
        || fail "could not make the rust stand-in"
    rm -rf "$ctx"
}

make_redis() {
    say "making a stand-in for redis:7 with Debian's redis-server"
    local ctx="$work/redis"
    mkdir -p "$ctx"
    # As the official image's entrypoint: arguments alone run redis-server, which gets
    # `--protected-mode no` and drops root for the redis user.
    cat >"$ctx/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis .
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
EOF
    chmod 755 "$ctx/docker-entrypoint.sh"
    cat >"$ctx/Containerfile" <<EOF
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \\
    && apt-get install -y --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* \\
    && mkdir /data && chown redis:redis /data
COPY docker-entrypoint.sh /usr/local/bin/
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
LABEL $standin_label="redis-server from Debian"
EOF
    podman build -q --pull=never -t docker.io/library/redis:7 "$ctx" >/dev/null \
        || fail "could not make the redis stand-in"
    rm -rf "$ctx"
}

say "base images"
if ! pull docker.io/library/debian:bookworm-slim; then
    podman image exists docker.io/library/debian:bookworm-slim || make_debian
fi
if ! pull docker.io/library/rust:1-slim-bookworm; then
    if ! podman image exists docker.io/library/rust:1-slim-bookworm \
        || [ "$(podman image inspect --format "{{index .Labels \"$standin_label\"}}" docker.io/library/rust:1-slim-bookworm)" != "$(rustc --version)" ]; then
        make_rust
    fi
fi
if ! pull docker.io/library/redis:7; then
    podman image exists docker.io/library/redis:7 || make_redis
fi
for name in debian:bookworm-slim rust:1-slim-bookworm redis:7; do
    origin="$(podman image inspect --format "{{index .Labels \"$standin_label\"}}" "docker.io/library/$name")"
    if [ -n "$origin" ]; then say "  $name: stand-in ($origin)"; else say "  $name: pulled"; fi
done

# ---- the images ----------------------------------------------------------------------------------

# vendor/ is made here and removed at exit; a marker file tells a later run that a vendor/ left by a
# run that was killed outright is its own. A vendor/ without the marker is the user's own: it is
# used as it is (an air-gapped machine cannot run `cargo vendor`) and left alone.
vendor_marker="vendor/.made-by-test-containers"
if ! [ -e vendor ] || [ -e "$vendor_marker" ]; then
    made_vendor=1
    say "cargo vendor"
    cargo vendor --locked --quiet vendor >/dev/null || fail "cargo vendor failed"
    # `cargo vendor` writes every file anew. One fixed time on all of them keeps the build's COPY
    # layer cached, and keeps build scripts that watch their sources' times (aws-lc-sys's) from
    # running again, while Cargo.lock is unchanged.
    find vendor -exec touch -h -d '2000-01-01 00:00:00 UTC' {} +
    touch "$vendor_marker"
else
    say "using the vendor/ folder that is here (not made by this script; left as it is)"
fi

image="$("$venv/bin/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["services"]["api"]["image"])' "$compose_file")"
build() {
    local target=$1 tag=$2
    say "podman build --target $target -t $tag"
    podman build --pull=never --layers --build-arg VENDORED=1 -f deploy/Dockerfile --target "$target" \
        -t "$tag" . >"$work/build-$target.log" 2>&1 \
        || { tail -40 "$work/build-$target.log" >&2; fail "podman build --target $target failed"; }
}
# The builder stage gets a tag of its own so that the clean-up's `podman image prune` keeps its
# layers: the next run reuses them when nothing changed (and the cargo target directory, a cache
# mount, when something did).
# Disk: vfs storage keeps a whole copy of the file system per layer, and the build's cargo target
# directory is a cache mount, so a build needs several GiB. When the storage's file system runs
# short, what an earlier run kept (the builder stage, unused images and build caches) is removed
# first; then, if it is still short, the test stops here with a message that says so.
need_gib=12
free_gib() { df -P -BG "$(podman info --format '{{.Store.GraphRoot}}')" | awk 'NR == 2 { sub("G", "", $4); print $4 }'; }
if [ "$(free_gib)" -lt "$need_gib" ]; then
    say "only $(free_gib) GiB free for podman's storage: removing the kept builder stage and build caches"
    podman rmi -f holidapp-builder:cache >/dev/null 2>&1 || true
    podman image prune -f >/dev/null 2>&1 || true
    podman system prune -f --build >/dev/null 2>&1 || podman system prune -f >/dev/null 2>&1 || true
    [ "$(free_gib)" -ge "$need_gib" ] \
        || fail "podman's storage ($(podman info --format '{{.Store.GraphRoot}}')) has $(free_gib) GiB free; the build needs about $need_gib GiB"
fi
build builder holidapp-builder:cache
build runtime "$image"
build debug "$debug_image"

size_mb() { echo "$(($(podman image inspect --format '{{.Size}}' "$1") / 1000000)) MB"; }
say "image sizes: $image $(size_mb "$image"), $debug_image $(size_mb "$debug_image")"

# One container per image for all its checks (each new container costs seconds on vfs). The
# shell in it prints one line per finding; the lines are checked here.
say "checking the runtime image"
podman run --rm "$image" sh -c '
    echo "uid $(id -u)"
    for bin in holidapp-api holidapp-worker; do
        if help="$("$bin" --help 2>&1)" && echo "$help" | grep -q REDIS_URL; then
            echo "help $bin"
        else
            echo "$bin --help: $help" | head -5 >&2
        fi
    done
    for tool in cargo rustc rustup gcc cc c++ ld as make; do
        command -v "$tool" >/dev/null && echo "build-tool $(command -v "$tool")"
    done
    for dir in /usr/local/cargo /usr/local/rustup /usr/local/rust; do
        [ -e "$dir" ] && echo "build-tool $dir"
    done
    true' >"$work/runtime-checks" || fail "could not run a container of $image"
uid="$(sed -n 's/^uid //p' "$work/runtime-checks")"
if [ -z "$uid" ] || [ "$uid" = 0 ]; then
    fail "the runtime image runs as user ${uid:-?}, not a non-root user"
fi
say "  runs as user $uid"
for bin in holidapp-api holidapp-worker; do
    grep -qx "help $bin" "$work/runtime-checks" || fail "$bin --help failed in the runtime image (or lists no settings)"
done
say "  holidapp-api and holidapp-worker answer --help"
if grep -q '^build-tool' "$work/runtime-checks"; then
    fail "the runtime image has build tools: $(sed -n 's/^build-tool //p' "$work/runtime-checks" | tr '\n' ' ')"
fi
say "  no build tool in it"

say "checking the debug image"
uid="$(podman run --rm "$debug_image" sh -c 'curl --version >/dev/null && jq --version >/dev/null \
    && redis-cli --version >/dev/null && id -u')" || fail "the debug image lacks curl, jq or redis-cli"
[ "$uid" != 0 ] || fail "the debug image runs as root"
say "  runs as user $uid, has curl, jq and redis-cli"

# ---- the compose stack ---------------------------------------------------------------------------

# What a run that was killed outright (SIGKILL, a machine restart) may have left.
if [ -n "$(project_containers)" ] || [ -n "$(podman volume ls -q --filter "label=io.podman.compose.project=$project")" ]; then
    say "removing the containers and volumes an earlier run of project $project left"
    (set +e; teardown)
fi

if (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
    fail "port 5000 is taken on this machine; the compose file publishes the API there"
fi

say "podman-compose up (project $project)"
stack_up=1
timeout 300 "$podman_compose" -p "$project" -f "$compose_file" up -d --no-build >"$work/up.log" 2>&1 \
    || { cat "$work/up.log" >&2; fail "podman-compose up failed"; }

containers_of() {
    podman ps -a --filter "label=io.podman.compose.project=$project" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort
}
ip_of() { podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
running() { [ "$(podman inspect --format '{{.State.Status}}' "$1" 2>/dev/null)" = running ]; }
mapfile -t workers < <(containers_of worker)
redis="$(containers_of redis)"
api_container="$(containers_of api)"
[ "${#workers[@]}" -eq 2 ] || fail "expected two worker containers, found ${#workers[@]}: ${workers[*]}"
if [ -z "$redis" ] || [ -z "$api_container" ]; then fail "no redis or api container"; fi
for c in "$redis" "$api_container" "${workers[@]}"; do
    wait_until 60 "$c to run" running "$c"
done

ready() { curl -fsS -o /dev/null "$api/readyz" 2>/dev/null; }
wait_until 120 "the API to be ready on $api" ready

say "POST /data"
curl -fsS -X POST "$api/data" >"$work/data.json" || fail "POST /data failed"
records() { curl -fsS -D - -o /dev/null "$api/data?limit=1" | tr -d '\r' | sed -n 's/^x-total-count: *//Ip'; }
loaded="$(records)"
[ "${loaded:-0}" -gt 0 ] || fail "no records loaded after POST /data"
say "  $loaded records loaded"

# submit N FILE: submits N plot jobs through one connection; the ids of the acknowledged ones
# (each answered with its job) are appended to FILE.
submit() {
    local n=$1 out=$2 i
    : >"$work/submit.curl"
    for ((i = 0; i < n; i++)); do
        printf 'url = "%s/jobs"\n' "$api" >>"$work/submit.curl"
    done
    curl -sS -K "$work/submit.curl" -X POST -H 'content-type: application/json' \
        -d '{"start": "1950", "end": "2020"}' -w '\n' >"$work/submitted.json" || true
    jq -r 'select(.id != null) | .id' "$work/submitted.json" >>"$out"
}

jobs_in() { curl -fsS "$api/jobs?status=$1&limit=1000"; }
# drained: no job waits or runs, and none failed.
drained() {
    local failed
    failed="$(jobs_in failed 2>/dev/null)" || return 1
    [ "$failed" = "[]" ] || fail "jobs failed: $(jq -c '[.[] | {id, error}]' <<<"$failed")"
    [ "$(jobs_in submitted 2>/dev/null)" = "[]" ] && [ "$(jobs_in in+progress 2>/dev/null)" = "[]" ]
}
# all_complete FILE: every job of FILE is complete (its record in $work/jobs.json).
all_complete() {
    local ids=$1 n
    n="$(wc -l <"$ids")"
    sed "s|^|url = \"$api/jobs/|; s|$|\"|" "$ids" >"$work/get.curl"
    curl -fsS -K "$work/get.curl" -w '\n' >"$work/jobs.json" 2>/dev/null || return 1
    [ "$(jq -s '[.[] | select(.status == "complete")] | length' "$work/jobs.json")" -eq "$n" ]
}

say "1. jobs shared by the two workers"
: >"$work/ids1"
submit 60 "$work/ids1"
[ "$(wc -l <"$work/ids1")" -eq 60 ] || fail "only $(wc -l <"$work/ids1") of 60 submits were acknowledged: $(grep -v '"id"' "$work/submitted.json" | head -3)"
wait_until 180 "60 jobs to complete" drained
all_complete "$work/ids1" || fail "not every job completed: $(jq -s -c '[.[] | select(.status != "complete") | {id, status}] | .[:5]' "$work/jobs.json")"
# check_png ID: the job's result is served as a PNG image, and is one (its 8-byte signature).
check_png() {
    local id=$1 type
    type="$(curl -fsS -o "$work/result" -w '%{content_type}' "$api/jobs/$id/result")" || fail "GET /jobs/$id/result failed"
    [ "$type" = image/png ] || fail "job $id result has content type $type"
    [ "$(head -c 8 "$work/result" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "job $id result is not a PNG"
}
while read -r id; do check_png "$id"; done <"$work/ids1"
say "  60 jobs complete, results are PNG"
jq -s -r '.[].worker' "$work/jobs.json" | sort | uniq -c >"$work/by-worker"
worker_ips="$(for w in "${workers[@]}"; do ip_of "$w"; done | sort)"
[ "$(jq -s -r '.[].worker' "$work/jobs.json" | sort -u)" = "$worker_ips" ] \
    || fail "jobs were not shared by the two worker containers ($(echo "$worker_ips" | tr '\n' ' ')): $(tr '\n' ' ' <"$work/by-worker")"
say "  shared by both worker containers: $(tr -s ' \n' ' ' <"$work/by-worker")"

say "2. a worker killed with SIGKILL while it holds jobs"
victim="${workers[0]}"
other="${workers[1]}"
victim_ip="$(ip_of "$victim")"
# Both workers are paused while the jobs are submitted; then the victim alone runs, and is killed
# as soon as it holds jobs. The other worker stays paused until the kill, so the jobs in progress
# on the victim's address just after the kill are exactly those it held when it died.
podman pause "${workers[@]}" >/dev/null
: >"$work/ids2"
submit 300 "$work/ids2"
[ "$(wc -l <"$work/ids2")" -eq 300 ] || fail "only $(wc -l <"$work/ids2") of 300 submits were acknowledged"
held_by_victim() {
    curl -fsS "$api/jobs?status=in+progress&limit=1000" 2>/dev/null \
        | jq -r --arg w "$victim_ip" '.[] | select(.worker == $w) | .id' >"$work/held" \
        && [ -s "$work/held" ]
}
podman unpause "$victim" >/dev/null
wait_until 60 "$victim to take jobs" held_by_victim
podman kill --signal KILL "$victim" >/dev/null
held_by_victim || fail "the killed worker held no job"
say "  killed $victim holding $(wc -l <"$work/held") job(s) in progress"
podman unpause "$other" >/dev/null
# The killed worker's jobs run again once their lease (30 s) runs out.
wait_until 240 "the 300 jobs to complete" drained
all_complete "$work/ids2" || fail "jobs were lost: $(jq -s -c '[.[] | select(.status != "complete") | {id, status}] | .[:5]' "$work/jobs.json")"
while read -r id; do
    jq -s -e --arg id "$id" '.[] | select(.id == $id) | .attempts >= 2' "$work/jobs.json" >/dev/null \
        || fail "job $id, held by the killed worker, did not run again"
done <"$work/held"
say "  all 300 complete; the jobs it held ran again"
# The restart policy brings the killed worker back (or compose does).
running "$victim" || podman start "$victim" >/dev/null
wait_until 60 "$victim to run again" running "$victim"

say "3. Redis killed with SIGKILL while the workers drain jobs, and started again"
# The workers are paused while the jobs are submitted, so every acknowledged job is still waiting
# in Redis (and only there) when the workers start on them and Redis is killed.
podman pause "${workers[@]}" >/dev/null
: >"$work/ids3"
submit 200 "$work/ids3"
acknowledged="$(wc -l <"$work/ids3")"
[ "$acknowledged" -eq 200 ] || fail "only $acknowledged of 200 submits were acknowledged"
waiting="$(jobs_in submitted | jq length)"
[ "$waiting" -eq 200 ] || fail "expected the 200 acknowledged jobs to wait, found $waiting waiting"
old_pid="$(podman inspect --format '{{.State.Pid}}' "$redis")"
podman unpause "${workers[@]}" >/dev/null
podman kill --signal KILL "$redis" >/dev/null
redis_restarted() {
    local pid
    running "$redis" || podman start "$redis" >/dev/null 2>&1 || true
    pid="$(podman inspect --format '{{.State.Pid}}' "$redis")"
    running "$redis" && [ "$pid" != 0 ] && [ "$pid" != "$old_pid" ]
}
wait_until 60 "Redis to start again" redis_restarted
wait_until 120 "the API to be ready again" ready
wait_until 240 "the jobs to complete after the Redis restart" drained
all_complete "$work/ids3" || fail "acknowledged jobs were lost: $(jq -s -c '[.[] | select(.status != "complete") | {id, status}] | .[:5]' "$work/jobs.json")"
all_complete "$work/ids1" || fail "jobs completed before the Redis restart were lost"
while read -r id; do check_png "$id"; done <"$work/ids1"
[ "$(records)" = "$loaded" ] || fail "the data set was lost with the Redis restart"
say "  all $acknowledged acknowledged jobs complete, earlier results and the data set kept"

say "4. the visits log on its volume, across a new API container"
for _ in 1 2 3; do curl -fsS -o /dev/null "$api/"; done
curl -fsS "$api/visits" >"$work/visits-before"
[ "$(wc -l <"$work/visits-before")" -ge 3 ] || fail "GET /visits shows fewer than 3 visits"
old_id="$(podman inspect --format '{{.Id}}' "$api_container")"
# (podman may complain on stderr that it has no systemd timer of the health check to remove.)
podman rm -f -t 10 "$api_container" >/dev/null 2>"$work/rm-api.log" \
    || { cat "$work/rm-api.log" >&2; fail "podman rm $api_container failed"; }
timeout 300 "$podman_compose" -p "$project" -f "$compose_file" up -d --no-build --no-deps api >"$work/up-api.log" 2>&1 \
    || { cat "$work/up-api.log" >&2; fail "podman-compose up api failed"; }
api_container="$(containers_of api)"
[ "$(podman inspect --format '{{.Id}}' "$api_container")" != "$old_id" ] || fail "the API container was not replaced"
wait_until 120 "the new API container to be ready" ready
curl -fsS "$api/visits" >"$work/visits-after"
head -c "$(wc -c <"$work/visits-before")" "$work/visits-after" | cmp -s - "$work/visits-before" \
    || fail "the visits log did not survive the new API container"
say "  the $(wc -l <"$work/visits-before") visits logged before are still there"

say "5. the debug image on the compose network"
network="$(podman inspect --format '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$api_container")"
podman run --rm --name "$debug_container" --network "$network" -e REDISCLI_AUTH="$REDIS_PASSWORD" \
    -e ID="$(head -1 "$work/ids1")" "$debug_image" sh -c '
        set -e
        curl -fsS http://api:5000/readyz >/dev/null
        [ "$(curl -fsS "http://api:5000/jobs/$ID" | jq -r .status)" = complete ]
        [ "$(redis-cli -h redis ping)" = PONG ]
        [ "$(redis-cli -h redis --raw dbsize)" -gt 0 ]
    ' >"$work/debug.log" 2>&1 \
    || { cat "$work/debug.log" >&2; fail "the debug image could not reach the API and Redis by name"; }
say "  curl reaches api:5000, jq reads its answer, redis-cli reaches redis:6379"

say "all checks passed"
