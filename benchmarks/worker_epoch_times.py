"""Student epoch times of a sweep run by one worker and by N workers sharing the device.

    python benchmarks/worker_epoch_times.py SWEEP_1WORKER SWEEP_NWORKERS --workers N

Reads every student run's metrics.jsonl (``epoch_time_s``) under ``students/`` of each sweep
folder and prints a Markdown table: median epoch time per process, and the throughput in
student epochs per second of the device (N workers run N epochs at once).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def epoch_times(sweep: Path) -> list[float]:
    """``epoch_time_s`` of every epoch of every student run of ``sweep``."""
    times = []
    for metrics in sorted((sweep / "students").rglob("metrics.jsonl")):
        for line in metrics.read_text().splitlines():
            if line.strip():
                times.append(float(json.loads(line)["epoch_time_s"]))
    if not times:
        raise SystemExit(f"no student epochs under {sweep / 'students'}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("one", type=Path, help="the sweep folder run by one worker")
    parser.add_argument("many", type=Path, help="the sweep folder run by N workers")
    parser.add_argument("--workers", type=int, required=True, help="N")
    args = parser.parse_args()
    one, many = statistics.median(epoch_times(args.one)), statistics.median(epoch_times(args.many))
    print("| workers | median s / student epoch (per process) | student epochs / s (device) |")
    print("|---|---|---|")
    print(f"| 1 | {one:.2f} | {1 / one:.3f} |")
    print(f"| {args.workers} | {many:.2f} | {args.workers / many:.3f} |")
    print(f"\nthroughput gain with {args.workers} workers: {args.workers * one / many:.2f}x")


if __name__ == "__main__":
    main()
