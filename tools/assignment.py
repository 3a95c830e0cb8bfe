"""Turn a master (solutions/NN-slug.ipynb) into a student notebook and an autograder.

``load(slug)`` runs ``otter assign`` on the master (once per master version; the result is
cached in ``_build/autograder/``), normalises the student notebook so that it is byte-for-byte
reproducible, and returns everything the grader and the tests need: the student notebook,
the test files (public and hidden), the points, the answer cells and their solutions.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
CASES = SOLUTIONS / "cases"
BUILD = ROOT / "_build" / "autograder"
FORMAT_VERSION = "1"  # bump when the generated files change for the same master
SLUG_RE = re.compile(r"^\d\d-[a-z0-9]+(-[a-z0-9]+)*$")
QUESTION_RE = re.compile(r"^q\d+$")

# What tools.exercises sets in every master's ASSIGNMENT CONFIG (README: "Assignment config").
FORCED_CONFIG = {
    "init_cell": True,
    "check_all_cell": False,
    "export_cell": False,
    "run_tests": False,
    "tests": {"files": False, "ok_format": False},
}
FORBIDDEN_KEYS = {"seed", "files", "autograder_files", "student_files", "plugins",
                  "save_environment", "ignore_modules", "config_file", "strip_solutions_from_all_cells",
                  "runs_on", "requirements", "environment"}

INIT_CELL = '''\
# Run this cell first. It loads the checker: grader.check("q1") then tests your answer to
# question 1. It finds this notebook by its assignment name, so it keeps working after you
# download or rename the notebook (keep it in the folder Jupyter runs it from).
import json
import os
from pathlib import Path

import otter

ASSIGNMENT = "{slug}"


def find_this_notebook():
    candidates = [os.environ.get("JPY_SESSION_NAME", ""), globals().get("__vsc_ipynb_file__", ""),
                  ASSIGNMENT + ".ipynb"] + sorted(str(p) for p in Path(".").glob("*.ipynb"))
    for candidate in candidates:
        try:
            metadata = json.loads(Path(candidate).read_text(encoding="utf-8"))["metadata"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if metadata.get("otter", {{}}).get("assignment_name") == ASSIGNMENT:
            return candidate
    raise FileNotFoundError(f"Cannot find this notebook's file in {{Path.cwd()}}: keep the .ipynb "
                            "file in the folder Jupyter runs it from.")


grader = otter.Notebook(find_this_notebook(), tests_dir="")'''

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


class MasterError(Exception):
    """The master does not follow solutions/README.md."""


@dataclass
class AnswerCell:
    question: str
    number: int          # 1 for the first answer cell of the question
    index: int           # cell index in the student notebook
    solution: str        # the solution's source for this cell


@dataclass
class Assignment:
    slug: str
    student: dict                      # normalised student notebook (JSON)
    tests: dict[str, str]              # question -> otter exception-based test file source
    possible: dict[str, float]         # question -> points
    answers: list[AnswerCell] = field(default_factory=list)
    zip_path: Path | None = None

    @property
    def questions(self) -> list[str]:
        return list(self.tests)

    @property
    def variables(self) -> list[str]:
        from tools.sandbox import test_parameters

        names = []
        for source in self.tests.values():
            names += [n for n in test_parameters(source) if n not in names]
        return names

    def student_text(self) -> str:
        return notebook_text(self.student)

    def notebook_with(self, replacements: dict[str, str] | None = None, solution=True) -> str:
        """The student notebook with answer cells filled: solutions, then ``replacements``
        (keys ``q3`` / ``q3.1`` for the first answer cell of q3, ``q3.2`` for the second)."""
        nb = copy.deepcopy(self.student)
        wanted = dict(replacements or {})
        for cell in self.answers:
            source = cell.solution if solution else nb["cells"][cell.index]["source"]
            for key in (f"{cell.question}.{cell.number}",) + ((cell.question,) if cell.number == 1 else ()):
                if key in wanted:
                    source = wanted.pop(key)
            nb["cells"][cell.index]["source"] = source
        if wanted:
            raise KeyError(f"no answer cell for {sorted(wanted)} in {self.slug}")
        return notebook_text(nb)


def notebook_text(nb: dict) -> str:
    """Serialise like Jupyter does (sources as lists of lines), deterministically."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        src = _source(cell)
        cell["source"] = src.splitlines(keepends=True)
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def slugs() -> list[str]:
    return sorted(p.stem for p in SOLUTIONS.glob("[0-9][0-9]-*.ipynb"))


def master_path(slug: str) -> Path:
    return SOLUTIONS / f"{slug}.ipynb"


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


# ----------------------------------------------------------------------------- master checks

def _read_config(master: dict, slug: str) -> dict:
    cells = master.get("cells", [])
    if not cells or cells[0].get("cell_type") != "raw" or not _source(cells[0]).lstrip().startswith(
            "# ASSIGNMENT CONFIG"):
        raise MasterError("the first cell must be a raw cell starting with '# ASSIGNMENT CONFIG'")
    config = yaml.safe_load(_source(cells[0]).split("\n", 1)[1]) or {}
    if not isinstance(config, dict):
        raise MasterError("ASSIGNMENT CONFIG is not a YAML mapping")
    if config.get("name") != slug:
        raise MasterError(f"ASSIGNMENT CONFIG needs 'name: {slug}' (found {config.get('name')!r})")
    bad = sorted(FORBIDDEN_KEYS & set(config))
    if bad:
        raise MasterError(f"remove {bad} from ASSIGNMENT CONFIG (see solutions/README.md)")
    for key, value in FORCED_CONFIG.items():
        if key in config and config[key] != value:
            raise MasterError(f"ASSIGNMENT CONFIG: '{key}' must be {value!r} or left out")
    config.update(copy.deepcopy(FORCED_CONFIG))
    generate = config.get("generate") if isinstance(config.get("generate"), dict) else {}
    config["generate"] = {**generate}
    config["python_version"] = "3.11"
    config["requirements"] = "requirements.txt"
    return config


def _check_structure(master: dict, min_questions: int = 4) -> None:
    """Walk the master's markers: every answer inside a solution block, tests well formed."""
    if master.get("metadata", {}).get("kernelspec", {}).get("language") != "python":
        raise MasterError("the master needs python kernelspec metadata "
                          "(jupytext --set-kernel python3)")
    question, block, names = None, None, []
    for i, cell in enumerate(master["cells"][1:], start=1):
        src = _source(cell).strip()
        kind = cell.get("cell_type")
        if kind == "raw":
            head = src.split("\n", 1)[0].strip().upper()
            if head == "# BEGIN QUESTION":
                if question:
                    raise MasterError(f"cell {i}: BEGIN QUESTION inside question {question}")
                config = yaml.safe_load(src.split("\n", 1)[1]) or {}
                question = str(config.get("name"))
                if not QUESTION_RE.match(question) or question in names:
                    raise MasterError(f"cell {i}: questions are named q1, q2, ... (got {question!r})")
                if config.get("manual"):
                    raise MasterError(f"cell {i}: manually graded questions are not supported")
                names.append(question)
            elif head == "# END QUESTION":
                if not question or block:
                    raise MasterError(f"cell {i}: END QUESTION without an open question")
                question = None
            elif head in ("# BEGIN SOLUTION", "# BEGIN TESTS"):
                if not question or block:
                    raise MasterError(f"cell {i}: {head} must be inside a question, not nested")
                block = head.split()[-1]
            elif head in ("# END SOLUTION", "# END TESTS"):
                if block != head.split()[-1]:
                    raise MasterError(f"cell {i}: {head} does not close the open block")
                block = None
            elif head.startswith("# BEGIN") or head.startswith("# END"):
                raise MasterError(f"cell {i}: unsupported marker {head!r}")
        elif block == "SOLUTION" and kind != "code":
            raise MasterError(f"cell {i}: solution blocks hold code cells only")
        elif block == "TESTS":
            if kind != "code":
                raise MasterError(f"cell {i}: test blocks hold code cells only")
            if not re.match(r'^"""\s*#\s*BEGIN TEST CONFIG', src):
                raise MasterError(f"cell {i}: each test starts with a TEST CONFIG docstring with points")
            config = yaml.safe_load(src.split("\n", 1)[1].split('"""')[0]) or {}
            if not isinstance(config.get("points"), (int, float)):
                raise MasterError(f"cell {i}: the TEST CONFIG needs 'points:'")
            if "failure_message" in config or "success_message" in config:
                raise MasterError(f"cell {i}: put feedback in the assert message, not in the config")
            if re.search(r"\benv\b", src.split("def ", 1)[-1].split(")", 1)[0]):
                raise MasterError(f"cell {i}: tests may not take 'env'")
        elif kind == "code" and block is None and any(m in src for m in ("# SOLUTION", "BEGIN SOLUTION", "END SOLUTION")):
            raise MasterError(f"cell {i}: solution markers outside a BEGIN/END SOLUTION block "
                              "would be copied to students")
    if question or block:
        raise MasterError("the master ends inside a question or block")
    if names != [f"q{k}" for k in range(1, len(names) + 1)]:
        raise MasterError(f"questions must be q1, q2, ... in order (got {names})")
    if len(names) < min_questions:
        raise MasterError(f"an exercise set has at least {min_questions} questions (got {len(names)})")


# ----------------------------------------------------------------------------- otter assign

def _digest(master: Path) -> str:
    h = hashlib.sha256()
    for part in (FORMAT_VERSION.encode(), master.read_bytes(),
                 (ROOT / "requirements.txt").read_bytes(), Path(__file__).read_bytes(),
                 (Path(__file__).parent / "sandbox.py").read_bytes()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


_ASSIGN_SCRIPT = """
import json, sys, traceback
from otter.assign import main
for master, result in json.loads(sys.argv[1]):
    try:
        main(master, result, no_pdfs=True, no_run_tests=True)
        error = None
    except BaseException:
        error = traceback.format_exc()[-3000:]
    print("@@assign " + json.dumps({"master": master, "error": error}), flush=True)
"""


def _run_otter_assign(jobs: list[tuple[str, dict, dict, Path]]) -> dict[str, str | None]:
    """Run otter assign on several masters in ONE process (otter takes seconds to import).

    ``jobs``: (slug, master, config, outdir); returns slug -> error text or None."""
    pairs, by_master = [], {}
    for slug, master, config, outdir in jobs:
        work = outdir / "in"
        work.mkdir(parents=True)
        nb = copy.deepcopy(master)
        nb["cells"][0]["source"] = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=True)
        (work / f"{slug}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
        shutil.copy(ROOT / "requirements.txt", work / "requirements.txt")
        pairs.append([str(work / f"{slug}.ipynb"), str(outdir / "dist")])
        by_master[str(work / f"{slug}.ipynb")] = slug
    proc = subprocess.run([sys.executable, "-c", _ASSIGN_SCRIPT, json.dumps(pairs)],
                          capture_output=True, text=True, timeout=600 + 60 * len(jobs))
    errors = {slug: f"otter assign did not run:\n{proc.stderr[-3000:]}" for slug, *_ in jobs}
    for line in proc.stdout.splitlines():
        if line.startswith("@@assign "):
            report = json.loads(line[len("@@assign "):])
            slug = by_master[report["master"]]
            errors[slug] = None if report["error"] is None else f"otter assign failed:\n{report['error']}"
    return errors


def _normalise_student(slug: str, nb: dict) -> dict:
    cells = []
    for cell in nb["cells"]:
        src = _source(cell)
        if cell["cell_type"] == "markdown" and not src.strip():
            continue
        meta = {k: v for k, v in cell.get("metadata", {}).items()
                if k in ("deletable", "editable", "tags")}
        if cell["cell_type"] == "code" and src.startswith("# Initialize Otter"):
            src = INIT_CELL.format(slug=slug)
            meta["tags"] = ["otter-init", "hide-input"]
        new = {"cell_type": cell["cell_type"], "metadata": meta, "source": src}
        if cell["cell_type"] == "code":
            new.update(outputs=[], execution_count=None)
        cells.append(new)
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:03d}"
    otter_meta = nb["metadata"]["otter"]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": KERNELSPEC,
            "language_info": {"name": "python"},
            "mystnb": {"execution_mode": "off"},
            "otter": otter_meta,
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _answer_cells(student: dict, autograder: dict) -> list[AnswerCell]:
    solutions = [_source(c) for c in autograder["cells"]
                 if "otter_assign_solution_cell" in c.get("metadata", {}).get("tags", [])]
    answers, pending = [], []
    for i, cell in enumerate(student["cells"]):
        if "otter_answer_cell" in cell.get("metadata", {}).get("tags", []):
            pending.append(i)
        m = re.match(r'^grader\.check\("(q\d+)"\)\s*$', _source(cell))
        if m:
            for number, index in enumerate(pending, start=1):
                answers.append(AnswerCell(m.group(1), number, index, ""))
            pending = []
    if pending or len(answers) != len(solutions):
        raise MasterError("could not match answer cells to questions")
    for cell, solution in zip(answers, solutions):
        cell.solution = solution
    return answers


def _check_answer_cells_compile(student: dict, answers: list[AnswerCell]) -> None:
    """The blanked answer cells must still be valid Python (a `# SOLUTION` marker on each line
    of a multi-line statement leaves a broken cell: use a PROMPT block instead)."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    for cell in answers:
        for label, source in (("student", _source(student["cells"][cell.index])),
                              ("solution", cell.solution)):
            try:
                compile(transform(source), f"<{cell.question}>", "exec")
            except SyntaxError as exc:
                raise MasterError(
                    f"{cell.question}: the {label} version of answer cell {cell.number} is not valid "
                    f"Python ({exc.msg}, line {exc.lineno}):\n{source}\n"
                    "Mark a multi-line statement with a # BEGIN/END SOLUTION block and a PROMPT "
                    "block (solutions/README.md)") from None


def _build_many(items: list[tuple[str, Path, Path, int]]) -> dict[str, str | None]:
    """Build several masters (slug, source, target, min_questions); slug -> error or None."""
    errors, jobs, prepared = {}, [], {}
    with tempfile.TemporaryDirectory(prefix="assign-") as tmp:
        for slug, source, target, min_questions in items:
            try:
                master = json.loads(source.read_text(encoding="utf-8"))
                config = _read_config(master, slug)
                _check_structure(master, min_questions)
            except (MasterError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
                errors[slug] = str(exc)
                continue
            outdir = Path(tmp) / slug
            jobs.append((slug, master, config, outdir))
            prepared[slug] = (master, outdir, target)
        if jobs:
            errors.update(_run_otter_assign(jobs))
        for slug, (master, outdir, target) in prepared.items():
            if errors.get(slug):
                continue
            try:
                _finish(slug, master, outdir / "dist", target)
            except (MasterError, ValueError, KeyError) as exc:
                errors[slug] = str(exc)
    return errors


def _finish(slug: str, master: dict, dist: Path, target: Path) -> None:
    """Normalise otter's output, check it, and store it in ``target`` (atomically)."""
    student_raw = json.loads((dist / "student" / f"{slug}.ipynb").read_text(encoding="utf-8"))
    autograder_nb = json.loads((dist / "autograder" / f"{slug}.ipynb").read_text(encoding="utf-8"))
    (zip_file,) = list((dist / "autograder").glob("*.zip"))
    student = _normalise_student(slug, student_raw)
    text = notebook_text(student)
    for marker in ("# SOLUTION", "BEGIN SOLUTION", "END SOLUTION", "BEGIN TESTS", "TEST CONFIG"):
        if marker in text:
            raise MasterError(f"the student notebook would contain {marker!r}: check the markers")
    with zipfile.ZipFile(zip_file) as zf:
        tests = {Path(n).stem: zf.read(n).decode("utf-8") for n in sorted(zf.namelist())
                 if re.match(r"^tests/q\d+\.py$", n)}
    tests = dict(sorted(tests.items(), key=lambda kv: int(kv[0][1:])))
    answers = _answer_cells(student, autograder_nb)
    _check_answer_cells_compile(student, answers)
    possible = _check_points(master, tests)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{slug}-", dir=target.parent))
    (staging / "student.ipynb").write_text(text, encoding="utf-8")
    shutil.copy(zip_file, staging / f"{slug}-autograder.zip")
    (staging / "assignment.json").write_text(json.dumps({
        "slug": slug, "tests": tests, "possible": possible,
        "answers": [vars(a) for a in answers]}, indent=1), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:  # built concurrently by another process: theirs is as good as ours
        shutil.rmtree(staging, ignore_errors=True)


def _check_points(master: dict, tests: dict[str, str]) -> dict[str, float]:
    from tools.sandbox import _resolve_points, parse_test_file

    declared = {}
    for cell in master["cells"]:
        src = _source(cell).strip()
        if cell.get("cell_type") == "raw" and src.upper().startswith("# BEGIN QUESTION"):
            config = yaml.safe_load(src.split("\n", 1)[1]) or {}
            declared[str(config["name"])] = config.get("points")
    possible = {}
    for q, source in tests.items():
        spec = parse_test_file(source)
        total = sum(_resolve_points(spec["points"], spec["cases"]))
        if declared.get(q) is None or abs(float(declared[q]) - total) > 1e-9:
            raise MasterError(f"{q}: 'points: {declared.get(q)}' but its tests add up to {total:g}")
        if not any(c.hidden for c in spec["cases"]) or not any(not c.hidden for c in spec["cases"]):
            raise MasterError(f"{q}: needs at least one public and one hidden test")
        possible[q] = total
    missing = sorted(set(declared) - set(tests), key=lambda q: int(q[1:]))
    if missing:
        raise MasterError(f"questions without tests: {missing}")
    return possible


def load(slug: str, rebuild: bool = False, source: Path | None = None,
         build_dir: Path | None = None, min_questions: int = 4) -> Assignment:
    """The assignment for ``slug``, built by otter assign if the master changed.

    ``source``/``build_dir``/``min_questions`` are for masters outside solutions/ (tests).
    """
    source = source or master_path(slug)
    build = build_dir or BUILD
    if not SLUG_RE.match(slug) or not source.is_file():
        raise MasterError(f"no master solutions/{slug}.ipynb")
    build.mkdir(parents=True, exist_ok=True)
    target = build / f"{slug}-{_digest(source)}"
    if rebuild or not (target / "assignment.json").is_file():
        with open(build / ".build.lock", "w") as lock:  # one builder at a time per build folder
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
            if rebuild or not (target / "assignment.json").is_file():
                items = [(slug, source, target, min_questions)]
                if source == master_path(slug) and build == BUILD:
                    # Build every other stale master in the same otter process: on a fresh
                    # clone this saves one otter start-up (seconds) per exercise set.
                    for other in slugs():
                        other_target = BUILD / f"{other}-{_digest(master_path(other))}"
                        if other != slug and not (other_target / "assignment.json").is_file():
                            items.append((other, master_path(other), other_target, 4))
                for other, _, other_target, _ in items:
                    for old in build.glob(f"{other}-*"):
                        if old.is_dir() and old != other_target and not old.name.startswith("."):
                            shutil.rmtree(old, ignore_errors=True)
                errors = _build_many(items)
                if errors.get(slug):
                    raise MasterError(errors[slug])
    data = json.loads((target / "assignment.json").read_text(encoding="utf-8"))
    student = json.loads((target / "student.ipynb").read_text(encoding="utf-8"))
    zip_path = build / f"{slug}-autograder.zip"
    built_zip = target / f"{slug}-autograder.zip"
    if not zip_path.exists() or zip_path.read_bytes() != built_zip.read_bytes():
        partial = build / f".{slug}-autograder.zip.{os.getpid()}"
        shutil.copy(built_zip, partial)
        os.replace(partial, zip_path)
    return Assignment(slug=slug, student=student, tests=data["tests"],
                      possible={k: float(v) for k, v in data["possible"].items()},
                      answers=[AnswerCell(**a) for a in data["answers"]], zip_path=zip_path)


def load_cases(slug: str) -> dict[str, list[dict]]:
    """The extra submissions of solutions/cases/NN-slug.yml, validated."""
    path = CASES / f"{slug}.yml"
    if not path.exists():
        return {"correct": [], "wrong": []}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = {"correct": [], "wrong": []}
    seen = set()
    for kind in ("correct", "wrong"):
        for case in data.get(kind) or []:
            name = case.get("name")
            if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name) or name in seen:
                raise MasterError(f"{path.name}: each case needs a unique name of letters, digits "
                                  f"and dashes ({name!r})")
            seen.add(name)
            answers = case.get("answers") or {}
            if not isinstance(answers, dict) or not answers:
                raise MasterError(f"{path.name}: case {name} has no 'answers'")
            lose = case.get("lose") or {}
            if kind == "wrong" and (not isinstance(lose, dict) or not any(v > 0 for v in lose.values())):
                raise MasterError(f"{path.name}: wrong case {name} needs 'lose: {{qN: points}}'")
            if kind == "correct" and lose:
                raise MasterError(f"{path.name}: correct case {name} cannot lose points")
            out[kind].append({"name": name, "why": case.get("why", ""),
                              "answers": {str(k): v for k, v in answers.items()},
                              "lose": {str(k): float(v) for k, v in lose.items()},
                              "status": case.get("status", "ok")})
    unknown = set(data) - {"correct", "wrong"}
    if unknown:
        raise MasterError(f"{path.name}: unknown keys {sorted(unknown)}")
    return out
