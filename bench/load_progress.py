"""What load progress costs (issue 24): ``python bench/load_progress.py [--mb 340] [--runs 3]``.

1. The private copy of a model file, as ``shutil.copyfile`` made it before (on Linux it is
   ``sendfile``, in the kernel) and as ``loader.copy_file`` makes it now (4 MiB chunks read
   into Python, each counted for the progress): wall time and this process's CPU time
   (``time.process_time``: robust on a busy machine, the wall time is not), median of
   ``--runs``. The file is random bytes in a temporary folder; the page cache is warm after
   the first run, so the figures are the copy's CPU, not the disk.
2. What a health answer pays to carry the progress: ``Tracker.snapshot()`` and
   ``Registry.progress(name)``'s dict look-up, in µs per call (``timeit``).
3. How many console lines a long load prints (``load_progress.interval``: 5 s, 15 s after a
   minute, 60 s after five), counted from the tracker's own schedule for loads of 4 s to
   30 min.

Prints a Markdown table; ``uptime``'s load is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from winserve import load_progress
from winserve.models.loader import copy_file


def _timed(copy: object, source: Path, target: Path) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    copy(source, target)  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu


def copies(mb: int, runs: int) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "model.bin"
        with source.open("wb") as out:
            for _ in range(mb):
                out.write(os.urandom(1 << 20))
        tracker = load_progress.Tracker("bench", source.stat().st_size, copying=True)
        ways = {
            "shutil.copyfile (before)": lambda s, t: shutil.copyfile(s, t),
            "copy_file + Tracker.read (now)": lambda s, t: copy_file(s, t, tracker.read),
        }
        for name, way in ways.items():
            walls, cpus = [], []
            for _ in range(runs):
                target = Path(folder) / "copy.bin"
                wall, cpu = _timed(way, source, target)
                walls.append(wall)
                cpus.append(cpu)
                target.unlink()
            rows.append(
                f"| {name} | {mb} MiB | {statistics.median(walls):.3f} s "
                f"| {statistics.median(cpus):.3f} s | {mb / statistics.median(walls):,.0f} MiB/s |"
            )
        tracker.end()
    return rows


def per_call() -> list[str]:
    tracker = load_progress.Tracker("bench", 340_000_000, copying=False)
    loads = {"bench": tracker}
    try:
        n = 200_000
        snapshot = min(timeit.repeat(tracker.snapshot, number=n, repeat=5)) / n * 1e6
        absent = min(timeit.repeat(lambda: loads.get("other"), number=n, repeat=5)) / n * 1e6
    finally:
        tracker.end()
    return [
        f"| Tracker.snapshot() (a load running) | {snapshot:.2f} µs |",
        f"| the registry's look-up, no load running | {absent:.3f} µs |",
    ]


def lines_for(seconds: float) -> int:
    """Progress lines a load of ``seconds`` prints (the tracker's schedule)."""
    count, at = 0, 0.0
    while True:
        at += load_progress.interval(at)
        if at >= seconds:
            return count
        count += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=340)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores\n")
    print("| copy | size | wall (median) | CPU (median) | speed |")
    print("|---|---|---|---|---|")
    print("\n".join(copies(options.mb, options.runs)))
    print("\n| per health answer | cost |\n|---|---|")
    print("\n".join(per_call()))
    print("\n| load time | console progress lines |\n|---|---|")
    for seconds in (4, 10, 60, 300, 1800):
        print(f"| {seconds} s | {lines_for(seconds)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
