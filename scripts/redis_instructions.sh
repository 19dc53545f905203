#!/bin/sh
# Counts the instructions redis-server runs for a drain, build against build.
#
#   scripts/redis_instructions.sh OLD_REDIS_QUEUE NEW_REDIS_QUEUE [ROUNDS]
#
# Each argument is a `redis_queue` binary of `holidapp-bench` (build one per commit, e.g. in a
# `git worktree`). For each round and each build, it runs `redis_queue --only drain` (one lease
# loop, so every run makes the same calls) with its redis-server under
# `valgrind --tool=callgrind`, and prints the instructions each server ran: one line per server
# (the benchmark starts one for its small and one for its large backlog, 20,000 jobs each,
# enqueued and drained). Unlike CPU time, an instruction count is the same on a busy machine as
# on a quiet one, so a change of a few per cent in what Redis does per job shows from one run.
# It counts only what Redis runs in user space: the kernel's work on replies, and the client's,
# are not in it, so confirm a gain end to end with `worker_drain --baseline-bin`.
#
# Needs valgrind (apt-get install valgrind) and redis-server and redis-cli on the PATH. A run
# takes about a minute.
set -eu

old=$1
new=$2
rounds=${3:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
real=$(command -v redis-server)

# The benchmark starts `redis-server` from the PATH: this one runs the real server under
# callgrind, in the background, so that the benchmark killing it at the end leaves callgrind
# running until it is shut down below, which writes its counts.
mkdir "$work/bin"
cat > "$work/bin/redis-server" <<EOF
#!/bin/sh
valgrind --tool=callgrind --callgrind-out-file=$work/out.%p $real "\$@" 2>/dev/null &
wait
EOF
chmod +x "$work/bin/redis-server"

measure() {
    label=$1
    bin=$2
    # Under valgrind, Redis answers ~50 times slower: a call that outlasts the client's timeout
    # fails the run, which is then reported and its partial counts left out.
    failed=
    if ! PATH="$work/bin:$PATH" "$bin" --only drain --runs 1 --small 20000 --large 20000 \
        --small-rounds 1 --loops 1 > "$work/log" 2>&1; then
        failed=1
        echo "$label: the benchmark failed: $(grep -m1 -i error "$work/log" || true)"
    fi
    for pid in $(pgrep -f "callgrind-out-file=$work" || true); do
        port=$(tr '\0' ' ' < "/proc/$pid/cmdline" | grep -o -- '--port [0-9]*' | cut -d' ' -f2)
        [ -n "$port" ] && redis-cli -p "$port" shutdown nosave > /dev/null 2>&1 || true
        # Callgrind writes its counts as the server exits.
        tail --pid="$pid" -f /dev/null
    done
    for out in "$work"/out.*; do
        [ -e "$out" ] || continue
        [ -n "$failed" ] ||
            echo "$label $(grep -m1 '^summary:' "$out" | cut -d' ' -f2) instructions"
        rm -f "$out"
    done
}

i=1
while [ "$i" -le "$rounds" ]; do
    measure old "$old"
    measure new "$new"
    i=$((i + 1))
done
