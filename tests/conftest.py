"""Shared set-up for the test suite.

Every process the tests start (nbval's kernels, the grader's subprocesses) inherits
PYTHONPATH with ``tests/offline`` first, whose ``sitecustomize`` blocks the network.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = ROOT / "tests" / "offline"

os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(OFFLINE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)
