"""Generate the student notebooks from the masters, and check an exercise set.

    python -m tools.exercises                       # every set: write exercises/NN-slug.ipynb
    python -m tools.exercises 01-missing-values     # one set
    python -m tools.exercises 01-missing-values --check
                                                    # ... then grade the solution (full marks),
                                                    # the blank notebook (0) and every case in
                                                    # solutions/cases/01-missing-values.yml

The autograder zip for Gradescope / ``otter grade`` is written to
``_build/autograder/NN-slug-autograder.zip``. See solutions/README.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from tools import assignment as assignment_mod
from tools.grade import _fmt, grade_many


@dataclass
class Expected:
    name: str
    kind: str                  # solution | blank | correct | wrong
    notebook: str
    scores: dict[str, float]
    status: str = "ok"
    why: str = ""


def generate(slug: str) -> assignment_mod.Assignment:
    """Write exercises/NN-slug.ipynb from the master; returns the assignment."""
    assignment = assignment_mod.load(slug)
    target = assignment_mod.EXERCISES / f"{slug}.ipynb"
    text = assignment.student_text()
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.parent.mkdir(exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return assignment


def expected_submissions(assignment) -> list[Expected]:
    """The solution, the blank notebook and every registered case, with the scores each must get."""
    full = dict(assignment.possible)
    out = [Expected("solution", "solution", assignment.notebook_with(), full),
           Expected("blank", "blank", assignment.student_text(), {q: 0.0 for q in full})]
    cases = assignment_mod.load_cases(assignment.slug)
    for kind in ("correct", "wrong"):
        for case in cases[kind]:
            unknown = set(case["lose"]) - set(full)
            if unknown:
                raise assignment_mod.MasterError(f"case {case['name']}: unknown questions {sorted(unknown)}")
            scores = {q: full[q] - case["lose"].get(q, 0.0) for q in full}
            out.append(Expected(f"{kind}-{case['name']}", kind,
                                assignment.notebook_with(case["answers"]), scores,
                                case["status"], case["why"]))
    return out


def compare(expected: Expected, result) -> list[str]:
    problems = []
    if result.status != expected.status:
        problems.append(f"status {result.status} ({result.reason}), expected {expected.status}")
    for q, want in expected.scores.items():
        got = result.scores.get(q, 0.0)
        if abs(got - want) > 1e-9:
            problems.append(f"{q}: earned {_fmt(got)}, expected {_fmt(want)}")
    return problems


def check(slug: str, timeout: float = 60, jobs: int | None = None, verbose: bool = True) -> list[str]:
    """Grade the solution, the blank notebook and the cases; returns the problems found."""
    assignment = generate(slug)
    expected = expected_submissions(assignment)
    start = time.monotonic()
    results = grade_many(assignment, [(e.name + ".ipynb", e.notebook.encode()) for e in expected],
                         timeout=timeout, jobs=jobs)
    problems = []
    if verbose:
        print(f"{slug}: {len(assignment.questions)} questions, "
              f"{_fmt(sum(assignment.possible.values()))} points, graded {len(expected)} "
              f"submissions in {time.monotonic() - start:.1f} s")
    for e, r in zip(expected, results):
        found = compare(e, r)
        earned = " ".join(f"{q}={_fmt(r.scores[q])}" for q in assignment.questions)
        if verbose:
            print(f"  {'FAIL' if found else 'ok  '} {e.name:<40} {r.status:<14} {earned}  ({r.seconds:.1f} s)")
            for p in found:
                print(f"       - {p}")
            if found:
                print("       log:\n" + "\n".join("         " + line for line in r.log.split("\n")[:60]))
        problems += [f"{slug} {e.name}: {p}" for p in found]
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Generate (and check) exercise sets.")
    parser.add_argument("slugs", nargs="*", help="NN-slug of the sets (default: all masters)")
    parser.add_argument("--check", action="store_true",
                        help="grade solution, blank notebook and cases with the real grader")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    slugs = args.slugs or assignment_mod.slugs()
    problems = []
    for slug in slugs:
        try:
            assignment = generate(slug)
            print(f"wrote exercises/{slug}.ipynb and {assignment.zip_path.relative_to(assignment_mod.ROOT)}")
            if args.check:
                problems += check(slug, timeout=args.timeout, jobs=args.jobs)
        except assignment_mod.MasterError as exc:
            problems.append(f"{slug}: {exc}")
            print(f"error in solutions/{slug}.ipynb: {exc}", file=sys.stderr)
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    if args.check:
        print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
