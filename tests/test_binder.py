"""Binder builds the course with repo2docker: check what it would build, without building.

repo2docker picks its build recipe from the files it finds (environment.yml, Pipfile,
requirements.txt, runtime.txt, a binder/ folder, ...). A stray file can silently change
the environment readers get, so the plan is checked here: Python 3.11 and our
requirements.txt, nothing else."""
import shutil
import subprocess
import sys
from pathlib import Path

from tools.build_book import ROOT

REPO2DOCKER = str(Path(sys.executable).parent / "repo2docker")


def binder_plan(folder: Path) -> str:
    """The Dockerfile repo2docker would build for ``folder`` (no Docker needed)."""
    result = subprocess.run([REPO2DOCKER, "--no-build", "--no-run", "--debug", str(folder)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def problems_with(plan: str) -> list:
    found = []
    if "python=3.11" not in plan:
        found.append("Python is not 3.11 (runtime.txt says python-3.11)")
    if 'pip install --no-cache-dir -r "requirements.txt"' not in plan:
        found.append("requirements.txt is not what gets installed")
    for stray in ("environment.yml", "Pipfile", "setup.py", "pyproject.toml", "postBuild", "apt.txt"):
        if f"src/{stray}" in plan:
            found.append(f"{stray} changes the build")
    return found


def test_binder_builds_python_311_from_requirements_txt():
    assert problems_with(binder_plan(ROOT)) == []


def test_a_stray_environment_file_would_be_noticed(tmp_path):
    for name in ("requirements.txt", "runtime.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "environment.yml").write_text("dependencies:\n  - python=3.12\n  - pandas\n")
    assert problems_with(binder_plan(tmp_path)) != []
