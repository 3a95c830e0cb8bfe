"""Exercise sets: masters follow solutions/README.md, student notebooks are generated and in sync,
and the checker works inside a Jupyter kernel after the notebook is downloaded and renamed.

Every test is parametrised over the masters found in solutions/, so a new set is tested
without editing this file.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tools import assignment as assignment_mod
from tools.exercises import compare, expected_submissions
from tools.grade import grade_many

ROOT = Path(__file__).resolve().parent.parent
SLUGS = assignment_mod.slugs()


def test_there_are_exercise_sets():
    assert {"01-missing-values", "02-handling-missing-data"} <= set(SLUGS)


@pytest.mark.parametrize("slug", SLUGS)
def test_master_follows_the_format(slug):
    """Builds with otter assign, >= 4 questions, a judgement question, public and hidden tests,
    stored executed."""
    assignment = assignment_mod.load(slug)
    assert len(assignment.questions) >= 4
    assert any(v.endswith("_choice") for v in assignment.variables), (
        "an exercise set needs a judgement question (variables qN_choice and qN_reason)")
    master = json.loads(assignment_mod.master_path(slug).read_text(encoding="utf-8"))
    unexecuted = [i for i, c in enumerate(master["cells"])
                  if c["cell_type"] == "code" and c.get("execution_count") is None]
    assert not unexecuted, (
        f"cells {unexecuted} have not been run: store the master executed, with its outputs "
        "(readers see them, and nbval checks them)")


@pytest.mark.parametrize("slug", SLUGS)
def test_student_notebook_is_generated_from_master(slug):
    """The committed exercises/NN-slug.ipynb is, byte for byte, what the master generates (the
    build is cached under _build/autograder/, keyed by the master's and the tools' content)."""
    generated = assignment_mod.load(slug).student_text()
    committed = assignment_mod.EXERCISES / f"{slug}.ipynb"
    assert committed.exists(), f"exercises/{slug}.ipynb is missing: run `make exercises`"
    assert committed.read_text(encoding="utf-8") == generated, (
        f"exercises/{slug}.ipynb differs from what solutions/{slug}.ipynb generates: "
        "run `make exercises` (never edit exercises/ by hand)")


def test_generation_is_deterministic(tmp_path):
    """Two fresh `otter assign` runs (no cache) give the committed notebook byte for byte:
    no timestamps or random ids survive the normalisation."""
    slug = SLUGS[0]
    first = assignment_mod.load(slug, build_dir=tmp_path / "a", rebuild=True).student_text()
    second = assignment_mod.load(slug, build_dir=tmp_path / "b", rebuild=True).student_text()
    assert first == second
    assert first == (assignment_mod.EXERCISES / f"{slug}.ipynb").read_text(encoding="utf-8")


def test_every_exercise_notebook_has_a_master():
    orphans = [p.name for p in assignment_mod.EXERCISES.glob("*.ipynb") if p.stem not in SLUGS]
    assert not orphans, f"exercises without a master in solutions/: {orphans}"


@pytest.mark.parametrize("slug", SLUGS)
def test_student_notebook_hides_solutions_and_hidden_tests(slug):
    assignment = assignment_mod.load(slug)
    text = (assignment_mod.EXERCISES / f"{slug}.ipynb").read_text(encoding="utf-8")
    student = json.loads(text)
    for cell in assignment.answers:
        for line in cell.solution.splitlines():
            if "# SOLUTION" in line:
                code = line.split("# SOLUTION")[0].strip()
                if len(code) > 15:
                    assert code not in text, f"{cell.question}: solution line leaked: {code}"
    tests = student["metadata"]["otter"]["tests"]
    assert set(tests) == set(assignment.questions)
    for q, source in tests.items():
        assert "hidden=True" not in source, f"{q}: a hidden test is in the student notebook"
        assert "hidden=True" in assignment.tests[q], f"{q}: the autograder lost the hidden tests"
    assert student["metadata"]["mystnb"] == {"execution_mode": "off"}
    assert all(c.get("outputs", []) == [] for c in student["cells"])


@pytest.mark.parametrize("slug", SLUGS)
def test_set_registers_enough_cases(slug):
    cases = assignment_mod.load_cases(slug)
    assert len(cases["correct"]) >= 3, "register at least three different correct answers"
    assert len(cases["wrong"]) >= 3, "register the classic wrong answers"


# The mechanism is the same for every set (tools.assignment writes the set-up cell); two sets
# in a real kernel prove it, and tests/test_grading.py runs every set's public tests in otter.
KERNEL_SLUGS = [s for s in ("01-missing-values", "02-handling-missing-data") if s in SLUGS]


@pytest.mark.parametrize("slug", KERNEL_SLUGS)
def test_check_works_in_a_kernel_after_download_and_rename(slug, tmp_path):
    """Run the student notebook in a real Jupyter kernel, renamed and next to another notebook:
    grader.check passes the right answers and explains the wrong one."""
    import nbformat
    from nbclient import NotebookClient

    assignment = assignment_mod.load(slug)
    first = assignment.answers[0]
    blank_first = assignment.student["cells"][first.index]["source"]
    text = assignment.notebook_with({f"{first.question}.{first.number}": blank_first})
    renamed = tmp_path / "my homework (1).ipynb"
    renamed.write_text(text, encoding="utf-8")
    other = [s for s in SLUGS if s != slug][:1]
    for s in other:
        shutil.copy(assignment_mod.EXERCISES / f"{s}.ipynb", tmp_path / f"{s}.ipynb")

    nb = nbformat.read(renamed, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    def output_text(cell):
        parts = []
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
            parts.append(out.get("evalue", ""))
        return "\n".join(parts)

    errors = [output_text(c) for c in nb.cells if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    checks = {}
    for cell in nb.cells:
        m = re.match(r'^grader\.check\("(q\d+)"\)', cell.source)
        if m:
            checks[m.group(1)] = output_text(cell)
    assert set(checks) == set(assignment.questions), errors
    for q, out in checks.items():
        if q == first.question:
            assert "Test case failed" in out and "Replace the ..." in out, out
        else:
            assert "All test cases passed" in out, f"{q}: {out}\n{errors}"


def test_readme_example_is_a_valid_master(tmp_path):
    """The complete example in solutions/README.md builds and grades as the README says."""
    import subprocess
    import sys

    readme = (ROOT / "solutions" / "README.md").read_text(encoding="utf-8")
    script = re.search(r"````python\n(.*?)````", readme, re.S).group(1)
    cases = re.search(r"```yaml\n(# solutions/cases/99-example.yml\n.*?)```", readme, re.S).group(1)
    (tmp_path / "99-example.py").write_text(script, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--set-kernel",
                    "python3", "-o", str(tmp_path / "99-example.ipynb"), str(tmp_path / "99-example.py")],
                   check=True, capture_output=True)
    assignment = assignment_mod.load("99-example", source=tmp_path / "99-example.ipynb",
                                     build_dir=tmp_path / "build", min_questions=1)
    assert assignment.questions == ["q1", "q2"]
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    (cases_dir / "99-example.yml").write_text(cases, encoding="utf-8")
    original = assignment_mod.CASES
    assignment_mod.CASES = cases_dir
    try:
        expected = expected_submissions(assignment)
    finally:
        assignment_mod.CASES = original
    assert len(expected) == 6
    results = grade_many(assignment, [(e.name + ".ipynb", e.notebook.encode()) for e in expected],
                         timeout=60)
    for e, r in zip(expected, results):
        assert not compare(e, r), (e.name, compare(e, r), r.log[:3000])
