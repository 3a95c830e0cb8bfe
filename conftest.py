"""Shared set-up for the test suite.

Every process the tests start (nbval's kernels, the grader's subprocesses) inherits
PYTHONPATH with ``tests/offline`` first, whose ``sitecustomize`` blocks the network.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OFFLINE = ROOT / "tests" / "offline"

os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(OFFLINE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)


def pytest_collection_modifyitems(items):
    """nbval skips figures by default; compare them too, byte for byte, so that a
    chapter whose figure changes between two executions fails like any other output."""
    for item in items:
        notebook = item.parent
        if hasattr(notebook, "skip_compare"):
            notebook.skip_compare = tuple(key for key in notebook.skip_compare if key != "image/png")
