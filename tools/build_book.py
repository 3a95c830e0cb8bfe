"""Build the book strictly: every Sphinx warning and every failing cell is an error.

    python -m tools.build_book                 # execute through the jupyter cache, build _build/html
    python -m tools.build_book --execute off   # render the committed outputs only (fast; used by the tests)

Jupyter Book 1 exits 0 when a notebook fails to execute unless myst-nb is told to
raise (``nb_execution_raise_on_error`` in ``_config.yml``); ``-W --keep-going`` turns
warnings into a non-zero exit after reporting all of them. Execution reports of
failed notebooks are kept in ``_build/html/reports``.
"""
import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def write_config(source: Path, execute: str, folder: Path) -> Path:
    """A copy of the book's _config.yml with the execution mode replaced."""
    config = yaml.safe_load((source / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = execute
    # Paths of local extensions are relative to the configuration file: keep them
    # pointing into the book now that the copy lives elsewhere.
    extensions = config.get("sphinx", {}).get("local_extensions") or {}
    for name, relative in extensions.items():
        extensions[name] = str((source / relative).resolve())
    path = folder / "_config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def build(source: Path, output: Path, execute: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Build the book in ``source`` into ``output``/_build/html; ``capture`` keeps the log
    in the result instead of printing it."""
    with tempfile.TemporaryDirectory() as scratch:
        config = write_config(source, execute, Path(scratch))
        command = [
            str(Path(sys.executable).parent / "jupyter-book"), "build", str(source),
            "--path-output", str(output), "--config", str(config),
            "-W", "-n", "--keep-going",
        ]
        return subprocess.run(command, cwd=source, capture_output=capture, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", choices=["cache", "force", "off"], default="cache")
    parser.add_argument("--output", type=Path, default=ROOT)
    args = parser.parse_args()
    code = build(ROOT, args.output, args.execute).returncode
    if code:
        print(f"book build failed (exit {code}); see the warnings above and _build/html/reports", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
