"""Grade a folder of submitted notebooks into a score table, without Docker.

    python -m tools.grade 01-missing-values submissions/ [--timeout 120] [--memory 2G] [--jobs N]
    make grade ASSIGNMENT=01-missing-values SUBMISSIONS=submissions/ [TIMEOUT=120]

Writes ``<folder>/scores.csv`` (submission, q1..qN, total, possible, status) and one log per
submission in ``<folder>/logs/``. Every submission runs in its own process with a time and a
memory limit; its answers are tested in another, clean process (see tools/sandbox.py and
book/instructors.md for what this does and does not defend against). Exit code 0 when every
submission got a row, whatever its status; 2 when the grading itself could not start.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tools import assignment as assignment_mod
from tools import sandbox

STATUSES = ("ok", "invalid-notebook", "timeout", "kernel-died", "out-of-memory", "error")
MAX_NOTEBOOK_BYTES = 50 * 1024**2


@dataclass
class Result:
    submission: str
    status: str
    scores: dict[str, float]
    possible: dict[str, float]
    reason: str = ""
    seconds: float = 0.0
    details: dict = field(default_factory=dict)
    log: str = ""

    @property
    def total(self) -> float:
        return sum(self.scores.values())

    def row(self) -> dict:
        row = {"submission": self.submission}
        row.update({q: _fmt(s) for q, s in self.scores.items()})
        row.update(total=_fmt(self.total), possible=_fmt(sum(self.possible.values())),
                   status=self.status)
        return row


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def parse_memory(text: str | int) -> int:
    text = str(text).strip().upper().removesuffix("B")
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def code_cells(data: bytes) -> list[str]:
    """The code cells of a notebook file; ValueError if it is not a readable notebook."""
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise ValueError("file too large")
    nb = json.loads(data.decode("utf-8"))
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("no 'cells' list")
    if nb.get("nbformat") != 4:
        raise ValueError(f"nbformat {nb.get('nbformat')!r}, expected 4")
    cells = []
    for cell in nb["cells"]:
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise ValueError("malformed cell")
        if cell["cell_type"] != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list) and all(isinstance(s, str) for s in src):
            src = "".join(src)
        if not isinstance(src, str):
            raise ValueError("malformed cell source")
        cells.append(src)
    return cells


def assignment_name(data: bytes) -> str | None:
    try:
        return json.loads(data.decode("utf-8"))["metadata"]["otter"]["assignment_name"]
    except Exception:  # noqa: BLE001
        return None


def grade_one(assignment, name: str, data: bytes, *, timeout: float, memory: int) -> Result:
    """Grade one submission (bytes of an .ipynb); never raises."""
    start = time.monotonic()
    zero = {q: 0.0 for q in assignment.questions}
    possible = dict(assignment.possible)
    lines = [f"submission: {name}", f"assignment: {assignment.slug}",
             f"limits: {timeout:g} s, {memory / 1024**3:.3g} GiB"]
    try:
        cells = code_cells(data)
    except (ValueError, UnicodeDecodeError) as exc:
        lines.append(f"status: invalid-notebook ({exc})")
        return Result(name, "invalid-notebook", zero, possible, str(exc), 0.0, log="\n".join(lines))
    found = assignment_name(data)
    if found != assignment.slug:
        lines.append(f"warning: the notebook says it is assignment {found!r}, graded as {assignment.slug!r}")

    with tempfile.TemporaryFile() as run_log, tempfile.TemporaryFile() as eval_log:
        run = _run(cells, assignment.variables, timeout, memory, run_log, None)
        if run["status"] in ("kernel-died", "error") and sandbox.default_launcher() == "fork":
            # Could be the notebook, or a neighbour that broke the shared fork server: run it
            # again in an interpreter of its own, and keep that result.
            lines.append(f"retried in a fresh interpreter after: {run['status']} ({run['reason']})")
            run_log.seek(0)
            run_log.truncate()
            run = _run(cells, assignment.variables, timeout, memory, run_log, "subprocess")
        status, reason = run["status"], run["reason"]
        scores, evaluation = dict(zero), {}
        if status in ("ok", "out-of-memory"):
            evaluation = _evaluate(assignment.tests, run["variables"], memory, eval_log, None)
            if evaluation["status"] == "error" and sandbox.default_launcher() == "fork":
                lines.append(f"tests retried in a fresh interpreter after: {evaluation['reason']}")
                evaluation = _evaluate(assignment.tests, run["variables"], memory, eval_log,
                                       "subprocess")
            if evaluation["status"] != "ok":
                status, reason = evaluation["status"], "grading: " + evaluation["reason"]
            else:
                for q in assignment.questions:
                    got = evaluation["questions"].get(q, {}).get("score", 0.0)
                    scores[q] = float(min(max(got, 0.0), possible[q]))
        seconds = time.monotonic() - start
        lines.append(f"status: {status}" + (f" ({reason})" if reason else ""))
        lines.append(f"time: {seconds:.1f} s (notebook {run.get('seconds', 0):.1f} s, "
                     f"tests {evaluation.get('seconds', 0):.1f} s)")
        lines.append(f"score: {_fmt(sum(scores.values()))} / {_fmt(sum(possible.values()))}")
        for q in assignment.questions:
            lines.append(f"\n{q}: {_fmt(scores[q])} / {_fmt(possible[q])}")
            for test in evaluation.get("questions", {}).get(q, {}).get("tests", []):
                mark = "passed" if test["passed"] else "FAILED"
                kind = "hidden" if test["hidden"] else "public"
                lines.append(f"  [{mark}] {test['name']} ({kind}, {_fmt(test['points'])} pt)")
                if not test["passed"]:
                    lines.append("      " + test["message"].replace("\n", "\n      "))
        for var, problem in sorted(run.get("problems", {}).items()):
            lines.append(f"variable {var}: {problem}")
        for var, note in sorted(evaluation.get("notes", {}).items()):
            lines.append(f"variable {var}: {note}")
        errors = [(i, e) for i, e in enumerate(run.get("cells", [])) if e]
        for i, err in errors:
            lines.append(f"code cell {i} raised {err}")
        lines.append("\n===== notebook output =====")
        lines.append(_tail(run_log))
        evaluation_output = _tail(eval_log)
        if evaluation_output.strip():
            lines.append("===== grader output =====")
            lines.append(evaluation_output)
    return Result(name, status, scores, possible, reason, seconds,
                  details={"run": run, "evaluation": evaluation}, log="\n".join(lines))


def _run(cells, variables, timeout, memory, log, launcher) -> dict:
    try:
        return sandbox.execute_submission(cells, variables, timeout=timeout, memory=memory,
                                          log=log, launcher=launcher)
    except Exception as exc:  # noqa: BLE001 - one submission never stops the batch
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}", "variables": {},
                "problems": {}, "cells": [], "seconds": 0.0}


def _evaluate(tests, variables, memory, log, launcher) -> dict:
    try:
        return sandbox.evaluate_answers(tests, variables, memory=memory, log=log, launcher=launcher)
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}


def _tail(handle, limit: int = 200_000) -> str:
    handle.flush()
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - limit))
    text = handle.read().decode("utf-8", errors="replace")
    return ("[... output truncated ...]\n" if size > limit else "") + text


def grade_many(assignment, submissions: list[tuple[str, bytes]], *, timeout: float = 120,
               memory: int = sandbox.DEFAULT_MEMORY, jobs: int | None = None) -> list[Result]:
    """Grade (name, bytes) pairs in parallel; results in the same order."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(grade_one, assignment, name, data, timeout=timeout, memory=memory)
                   for name, data in submissions]
        return [f.result() for f in futures]


def write_scores(path: Path, assignment, results: list[Result]) -> None:
    fields = ["submission", *assignment.questions, "total", "possible", "status"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for result in results:
            writer.writerow(result.row())


def grade_folder(slug: str, folder: Path, *, timeout: float = 120,
                 memory: int = sandbox.DEFAULT_MEMORY, jobs: int | None = None) -> list[Result]:
    assignment = assignment_mod.load(slug)
    paths = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    submissions = []
    for path in paths:  # read everything first: a submission cannot change another's file later
        try:
            submissions.append((path.name, path.read_bytes()))
        except OSError as exc:
            submissions.append((path.name, f"unreadable: {exc}".encode()))
    results = grade_many(assignment, submissions, timeout=timeout, memory=memory, jobs=jobs)
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    for result in results:
        (logs / f"{result.submission}.log").write_text(result.log + "\n", encoding="utf-8")
    write_scores(folder / "scores.csv", assignment, results)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", help="NN-slug of the exercise set, e.g. 01-missing-values")
    parser.add_argument("submissions", help="folder with the submitted .ipynb files")
    parser.add_argument("--timeout", type=float, default=sandbox.DEFAULT_TIMEOUT,
                        help="seconds per submission (default 120)")
    parser.add_argument("--memory", default="2G", help="memory limit per submission (default 2G)")
    parser.add_argument("--jobs", type=int, default=None, help="parallel submissions (default: CPUs)")
    args = parser.parse_args(argv)
    if not args.assignment or not args.submissions:
        parser.error("usage: make grade ASSIGNMENT=NN-slug SUBMISSIONS=folder")
    folder = Path(args.submissions)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    try:
        memory = parse_memory(args.memory)
        assignment_mod.load(args.assignment)
    except (assignment_mod.MasterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sandbox.make_non_dumpable()  # submissions (same user) cannot ptrace the grader itself
    start = time.monotonic()
    results = grade_folder(args.assignment, folder, timeout=args.timeout, memory=memory, jobs=args.jobs)
    elapsed = time.monotonic() - start
    width = max([len(r.submission) for r in results] + [10])
    for r in results:
        print(f"{r.submission:<{width}}  {_fmt(r.total):>6} / {_fmt(sum(r.possible.values()))}  "
              f"{r.status:<16} {r.seconds:5.1f} s")
    print(f"graded {len(results)} submission(s) in {elapsed:.1f} s -> {folder / 'scores.csv'}, "
          f"logs in {folder / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
