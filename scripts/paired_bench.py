#!/usr/bin/env python3
"""Compares two builds on one benchmark in paired, interleaved runs.

Each round runs the benchmark command of both builds once, in alternating order (old then new,
then new then old), so that both see the same machine; a figure is read from each run's output
with a regular expression (its first group). It prints every run's figures, the median and range
of each build, and the median (with its range) of the per-round ratios new/old, which is the
figure to quote on a noisy machine.

    scripts/paired_bench.py --runs 5 --metric 'drained at ([0-9.]+) jobs/s' \\
        --old '/path/to/old/memory_drain' --new 'target/release/memory_drain'

Commands are split like a shell would (shlex) but run without one. `--higher-is-better` is the
default; pass `--lower-is-better` for latencies, so that the printed change reads as a gain when
positive either way.
"""

import argparse
import re
import shlex
import statistics
import subprocess
import sys


def run(command: str, metric: re.Pattern) -> float:
    done = subprocess.run(shlex.split(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{command!r} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}")
    found = metric.search(done.stdout) or metric.search(done.stderr)
    if not found:
        sys.exit(f"{command!r}: no match for {metric.pattern!r} in:\n{done.stdout}\n{done.stderr}")
    return float(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (each runs both builds)")
    parser.add_argument("--metric", required=True, help="regular expression; group 1 is the figure")
    parser.add_argument("--old", required=True, help="the baseline build's command")
    parser.add_argument("--new", required=True, help="the new build's command")
    parser.add_argument("--label", default="", help="name printed with the result")
    parser.add_argument("--lower-is-better", action="store_true")
    args = parser.parse_args()
    metric = re.compile(args.metric)
    if metric.groups < 1:
        sys.exit("--metric needs a group around the figure")

    figures = {"old": [], "new": []}
    ratios = []
    for round_ in range(args.runs):
        order = ["old", "new"] if round_ % 2 == 0 else ["new", "old"]
        got = {}
        for build in order:
            got[build] = run(getattr(args, build), metric)
            figures[build].append(got[build])
        ratio = got["new"] / got["old"] if got["old"] else float("inf")
        if args.lower_is_better:
            ratio = got["old"] / got["new"] if got["new"] else float("inf")
        ratios.append(ratio)
        print(f"round {round_ + 1}: old {got['old']:g}, new {got['new']:g}", flush=True)

    label = f"{args.label}: " if args.label else ""
    for build in ("old", "new"):
        values = figures[build]
        print(f"{label}{build} median {statistics.median(values):g} "
              f"[{min(values):g} to {max(values):g}]")
    change = (statistics.median(ratios) - 1) * 100
    print(f"{label}new vs old: {change:+.1f}% (paired ratios from {(min(ratios) - 1) * 100:+.1f}% "
          f"to {(max(ratios) - 1) * 100:+.1f}%; positive is better)")


if __name__ == "__main__":
    main()
