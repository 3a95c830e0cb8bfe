"""How long grading takes: one batch of 20 submissions, graded as ``make grade`` does.

    python -m tools.grading_bench [NN-slug] [--count 20] [--jobs N]

The submissions are the set's solution, blank notebook and registered cases, repeated to
``count`` files. Prints the batch's wall time, the seconds each submission took (from start of
its notebook to the end of its tests, while sharing the machine with the other jobs) and the
throughput. A measurement, not a test: numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tools import assignment as assignment_mod
from tools.exercises import expected_submissions
from tools.grade import grade_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("slug", nargs="?", default="02-handling-missing-data")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    assignment = assignment_mod.load(args.slug)
    pool = expected_submissions(assignment)
    jobs = args.jobs or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="grading-bench-") as tmp:
        folder = Path(tmp)
        for i in range(args.count):
            e = pool[i % len(pool)]
            (folder / f"{i:02d}-{e.name}.ipynb").write_text(e.notebook, encoding="utf-8")
        start = time.monotonic()
        results = grade_folder(args.slug, folder, timeout=120, jobs=jobs)
        batch = time.monotonic() - start
    seconds = [r.seconds for r in results]
    statuses = sorted({r.status for r in results})
    print(f"assignment {args.slug}: {args.count} submissions, {jobs} parallel jobs, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"batch wall time: {batch:.1f} s ({batch / args.count:.2f} s per submission of throughput)")
    print(f"per submission: median {statistics.median(seconds):.1f} s, "
          f"min {min(seconds):.1f} s, max {max(seconds):.1f} s (statuses: {', '.join(statuses)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
