"""Run one submission, then grade its answers in a process it never touched.

Two child processes per submission, started by :func:`execute_submission` and
:func:`evaluate_answers`:

``run``       executes the notebook's code cells in an IPython shell (no Jupyter kernel, no
              network server) under time, memory and file-size limits, in its own session and
              an empty temporary folder, so that a timeout kills it and its children. At the
              end it encodes the graded variables with :mod:`tools.transfer` and writes them to
              a pipe only the grader reads. Everything the notebook prints goes to the log.
``evaluate``  a process that never ran submission code: it decodes those values as plain data
              and runs the public and hidden tests with otter's exception-based test
              semantics, so patched libraries, always-equal objects or a rewritten ``grader``
              in the submission cannot reach the tests.

Both are forks of a fork server that imported pandas, scikit-learn and IPython once
(:mod:`tools._preload`), which saves seconds per submission; with GRADER_LAUNCH=subprocess (and
off Linux) each child is a new interpreter instead, the evaluator an isolated ``python -I``.
Children drop every descriptor they inherited and make themselves non-dumpable, so other
processes of the same user cannot read or write their memory or pipes via /proc.
"""
from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT = 120
DEFAULT_MEMORY = 2 * 1024**3
EVAL_TIMEOUT = 60
MAX_RESULT_BYTES = 32 * 1024**2   # encoded answers of one submission
MAX_FILE_BYTES = 64 * 1024**2     # any file a child writes, its log included
CHILD_ENV = {
    "MPLBACKEND": "Agg",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONWARNINGS": "ignore",
}


# ----------------------------------------------------------------------------- in the children

def make_non_dumpable() -> None:
    """Other processes of the same (non-root) user can no longer ptrace this process or open
    its memory and file descriptors through /proc."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def _harden(memory_bytes: int, cpu_seconds: int) -> None:
    """Limits every child sets on itself first (safe with a threaded parent, unlike preexec_fn)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    make_non_dumpable()


def _redirect_output(log_fd: int | None = None) -> int:
    """Send fd 1 and 2 to the log; return a private duplicate of the original fd 1."""
    channel = os.dup(1)
    if log_fd is not None:
        os.dup2(log_fd, 2)
    os.dup2(2, 1)  # the notebook's prints go to the log, not to the result channel
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)
    return channel


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run_cells(request: dict) -> dict:
    """Execute the submission's cells in an IPython shell; encode the graded variables."""
    from IPython.core.interactiveshell import InteractiveShell
    from tools import transfer

    from traitlets.config import Config

    sys.modules["otter"] = _otter_stub()
    os.environ["IPYTHONDIR"] = os.path.abspath(".ipython")  # not the grader's ~/.ipython
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config, colors="nocolor")
    shell.user_ns["__name__"] = "__main__"
    cells, memory_error = [], False
    for index, source in enumerate(request["cells"]):
        print(f"\n----- cell {index} " + "-" * 50, flush=True)
        print(source, flush=True)
        print("----- output", flush=True)
        try:
            result = shell.run_cell(source, store_history=True, silent=False)
            error = result.error_before_exec or result.error_in_exec
        except BaseException as exc:  # noqa: BLE001 - nothing a cell does may stop the run
            error = exc
        if isinstance(error, MemoryError):
            memory_error = True
        cells.append(None if error is None else f"{type(error).__name__}: {error}"[:500])
        sys.stdout.flush()

    variables, problems = {}, {}
    for name in request["variables"]:
        if name not in shell.user_ns:
            problems[name] = "not defined"
            continue
        try:
            variables[name] = transfer.encode(shell.user_ns[name])
        except Exception as exc:  # noqa: BLE001
            problems[name] = f"{type(exc).__name__}: {exc}"[:300]
    return {"cells": cells, "memory_error": memory_error, "variables": variables,
            "problems": problems}


def evaluate(request: dict) -> dict:
    """Decode the answers as data and run the tests (never runs submission code)."""
    import warnings

    warnings.simplefilter("ignore")
    from tools import transfer

    env, notes = {}, {}
    for name, payload in request["variables"].items():
        try:
            env[name] = transfer.decode(payload)
        except Exception as exc:  # noqa: BLE001
            notes[name] = f"rejected: {type(exc).__name__}: {exc}"[:300]
    return {"questions": run_tests(request["tests"], env), "notes": notes}


MODES = {"run": run_cells, "evaluate": evaluate}


def _child_main(mode: str) -> None:
    """Entry point of a ``python -m tools.sandbox MODE`` child: request on stdin."""
    request = json.loads(sys.stdin.buffer.read())
    _harden(request["memory"], request["cpu"])
    channel = _redirect_output()
    result = MODES[mode](request)
    _write_all(channel, json.dumps(result, allow_nan=True).encode())
    sys.stdout.flush()
    os._exit(0)


def _max_fd() -> int:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if 0 < soft < 1 << 20 else 1 << 16


def _forked_main(mode: str, request_fd, channel_fd, log_fd, cwd: str) -> None:
    """Entry point of a child forked from the preloaded fork server."""
    os.setsid()
    os.chdir(cwd)
    request_fd, channel_fd, log_fd = int(request_fd), int(channel_fd), int(log_fd)
    # Drop every descriptor inherited from the fork server (its liveness pipe, the resource
    # tracker, ...): submission code must not reach anything but its own pipes.
    keep = sorted({0, 1, 2, request_fd, channel_fd, log_fd})
    for low, high in zip(keep, keep[1:] + [_max_fd()]):
        os.closerange(low + 1, high)
    if "" in sys.path:
        sys.path.remove("")
    chunks = []
    while chunk := os.read(request_fd, 1 << 20):
        chunks.append(chunk)
    os.close(request_fd)
    request = json.loads(b"".join(chunks))
    _harden(request["memory"], request["cpu"])
    os.dup2(channel_fd, 1)
    os.close(channel_fd)
    channel = _redirect_output(log_fd)
    os.close(log_fd)
    try:
        result = MODES[mode](request)
        _write_all(channel, json.dumps(result, allow_nan=True).encode())
    finally:
        try:
            sys.stdout.flush()
        finally:
            os._exit(0)


def _otter_stub():
    """A stand-in for ``otter`` while a submission runs: its ``grader.check`` cells do nothing
    (the tests run later, elsewhere), and importing the real otter would cost seconds."""
    import types

    class Notebook:
        def __init__(self, *args, **kwargs):
            pass

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    module = types.ModuleType("otter")
    module.Notebook = Notebook
    return module


class _TestCase:
    """Compatible with ``otter.test_files.test_case`` (the decorator in otter's test files)."""

    def __init__(self, name=None, points=None, hidden=False, success_message=None,
                 failure_message=None):
        self.name, self.points, self.hidden = name, points, hidden
        self.failure_message = failure_message
        self.func = None

    def __call__(self, func):
        self.func = func
        return self


def parse_test_file(source: str) -> dict:
    """Parse one of otter's exception-based test files without importing otter."""
    tree = ast.parse(source)
    body = [node for node in tree.body
            if not (isinstance(node, ast.ImportFrom) and node.module == "otter.test_files")]
    namespace = {"test_case": _TestCase}
    exec(compile(ast.Module(body=body, type_ignores=[]), "<test>", "exec"), namespace)
    cases = [v for v in namespace.values() if isinstance(v, _TestCase)]
    for i, case in enumerate(cases, start=1):
        if case.name is None:
            case.name = f"{namespace['name']} - {i}"
    return {"name": namespace["name"], "points": namespace.get("points"),
            "all_or_nothing": bool(namespace.get("all_or_nothing", False)), "cases": cases}


def test_parameters(source: str) -> list[str]:
    """The names of the answer variables a test file reads (its test functions' parameters)."""
    names = []
    for node in ast.parse(source).body:  # the test functions, not helpers defined inside them
        if isinstance(node, ast.FunctionDef):
            for arg in node.args.args + node.args.kwonlyargs:
                if arg.arg not in names:
                    names.append(arg.arg)
    return names


def _resolve_points(total, cases) -> list[float]:
    """otter's rule (TestFile.resolve_test_file_points) for the point value of each test case."""
    if isinstance(total, list):
        return [float(p) for p in total]
    given = [c.points for c in cases]
    pre = sum(p for p in given if p is not None)
    n_free = sum(p is None for p in given)
    if total is not None:
        each = (total - pre) / n_free if n_free else 0.0
    elif pre == 0:
        each = 1 / n_free if n_free else 0.0
    else:
        each = 0.0
    return [float(p) if p is not None else each for p in given]


def run_tests(tests: dict, env: dict) -> dict:
    """Run parsed test files against ``env``; returns per-question scores and messages."""
    import traceback

    questions = {}
    for qname, source in tests.items():
        spec = parse_test_file(source)
        points = _resolve_points(spec["points"], spec["cases"])
        results = []
        for case, pts in zip(spec["cases"], points):
            params = list(case.func.__code__.co_varnames[: case.func.__code__.co_argcount])
            kwargs = {p: env.get(p) for p in params}
            try:
                case.func(**kwargs)
                passed, message = True, ""
            except Exception as exc:  # noqa: BLE001
                passed = False
                message = f"{type(exc).__name__}: {exc}".strip()
                if not isinstance(exc, AssertionError):
                    message += "\n" + "".join(traceback.format_exception_only(type(exc), exc)).strip()
            results.append({"name": case.name, "hidden": bool(case.hidden), "points": pts,
                            "passed": passed, "message": message[:2000]})
        possible = sum(r["points"] for r in results)
        if spec["all_or_nothing"]:
            score = possible if all(r["passed"] for r in results) else 0.0
        else:
            score = sum(r["points"] for r in results if r["passed"])
        questions[qname] = {"score": score, "possible": possible, "tests": results}
    return questions


# ----------------------------------------------------------------------------- in the grader

def _child_env() -> dict:
    env = dict(os.environ)
    env.update(CHILD_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _collect(read_fd: int, exited, deadline: float) -> tuple[str, bytes]:
    """Read a child's result pipe until EOF, the deadline, or MAX_RESULT_BYTES; a background
    process that keeps the pipe open after the child exited cannot make the grader wait."""
    import select

    os.set_blocking(read_fd, False)
    chunks, size, exited_at = [], 0, None
    while True:
        now = time.monotonic()
        if now >= deadline:
            return "timeout", b"".join(chunks)
        if exited():
            exited_at = exited_at or now
            if now - exited_at > 1.0:
                return "finished", b"".join(chunks)
        ready, _, _ = select.select([read_fd], [], [], min(0.05, max(0.0, deadline - now)))
        if not ready:
            continue
        try:
            chunk = os.read(read_fd, 1 << 20)
        except BlockingIOError:
            continue
        if not chunk:
            return "finished", b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESULT_BYTES:
            return "overflow", b""
        chunks.append(chunk)


def _feed(write, payload: bytes) -> None:
    import threading

    def run():
        try:
            write(payload)
        except (BrokenPipeError, OSError, ValueError):
            pass

    threading.Thread(target=run, daemon=True).start()


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the child and everything it started in its session
    except (ProcessLookupError, PermissionError):
        pass


def _spawn(mode: str, request: dict, timeout: float, log, cwd) -> tuple[str, bytes, int | None, float]:
    """Run a child as a new interpreter (fallback when the fork server is not available)."""
    if mode == "run":
        argv = [sys.executable, "-m", "tools.sandbox", "run"]
    else:  # isolated: no PYTHONPATH, no current directory, no user site
        argv = [sys.executable, "-I", str(Path(__file__).resolve()), "evaluate"]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                            cwd=cwd, env=_child_env(), start_new_session=True)

    def write(payload):
        proc.stdin.write(payload)
        proc.stdin.close()

    _feed(write, json.dumps(request, allow_nan=True).encode())
    outcome, out = _collect(proc.stdout.fileno(), lambda: proc.poll() is not None, start + timeout)
    if outcome == "finished":
        try:
            proc.wait(timeout=max(0.5, start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            outcome = "timeout"
    _kill_session(proc.pid)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    return outcome, out, proc.returncode, time.monotonic() - start


class _Fd:
    """A file descriptor handed to a forked child (duplicated through the fork server)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self):
        from multiprocessing import reduction

        return _detach, (reduction.DupFd(self.fd),)

    def __int__(self):
        return self.fd


def _detach(dup_fd) -> int:
    return dup_fd.detach()


_CONTEXT = None


def _fork_context():
    """A fork server that has imported pandas, scikit-learn, IPython, ... once: every child is a
    fresh fork of it, so a submission or an evaluation does not pay the imports again. The
    server itself never runs submission code, so an evaluator forked from it is clean."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["tools._preload"])
        _CONTEXT = context
    return _CONTEXT


def _fork(mode: str, request: dict, timeout: float, log, cwd) -> tuple[str, bytes, int | None, float]:
    start = time.monotonic()
    request_r, request_w = os.pipe()
    result_r, result_w = os.pipe()
    process = _fork_context().Process(
        target=_forked_main, args=(mode, _Fd(request_r), _Fd(result_w), _Fd(log.fileno()), cwd),
        daemon=False)
    try:
        process.start()
    finally:
        os.close(request_r)
        os.close(result_w)

    def write(payload):
        try:
            _write_all(request_w, payload)
        finally:
            os.close(request_w)

    _feed(write, json.dumps(request, allow_nan=True).encode())
    outcome, out = _collect(result_r, lambda: process.exitcode is not None, start + timeout)
    os.close(result_r)
    if outcome == "finished":
        process.join(max(0.5, start + timeout - time.monotonic()))
        if process.exitcode is None:
            outcome = "timeout"
    _kill_session(process.pid)
    if process.exitcode is None:
        process.kill()
    process.join()
    return outcome, out, process.exitcode, time.monotonic() - start


def default_launcher() -> str:
    """``fork`` (preloaded fork server, fast) on Linux; ``subprocess`` (a new interpreter per
    child) elsewhere or when GRADER_LAUNCH=subprocess."""
    if os.environ.get("GRADER_LAUNCH") == "subprocess" or sys.platform != "linux":
        return "subprocess"
    return "fork"


def _launch(mode: str, request: dict, timeout: float, log, cwd, launcher: str | None):
    if (launcher or default_launcher()) == "subprocess":
        return _spawn(mode, request, timeout, log, cwd)
    return _fork(mode, request, timeout, log, cwd)


def execute_submission(cells: list[str], variables: list[str], *, timeout: float, memory: int,
                       log, launcher: str | None = None) -> dict:
    """Run the cells in a limited child. Returns {'status', 'reason', 'variables', ...}."""
    with tempfile.TemporaryDirectory(prefix="grade-run-", ignore_cleanup_errors=True) as workdir:
        request = {"cells": cells, "variables": variables, "memory": int(memory),
                   "cpu": int(timeout) + 10}
        outcome, out, returncode, seconds = _launch("run", request, timeout, log, workdir, launcher)
    result = {"seconds": seconds, "returncode": returncode, "variables": {}, "problems": {},
              "cells": []}
    if outcome == "timeout" or returncode == -signal.SIGXCPU:
        return {**result, "status": "timeout", "reason": f"stopped after {timeout:g} s"}
    if outcome == "overflow":
        return {**result, "status": "error", "reason": "the answers are too large to grade"}
    data = None
    if 0 < len(out) <= MAX_RESULT_BYTES:  # a complete answer counts, whatever the exit code
        try:
            data = json.loads(out)
        except ValueError:
            data = None
    if not isinstance(data, dict) or not isinstance(data.get("variables"), dict):
        if returncode == -signal.SIGKILL:
            return {**result, "status": "out-of-memory", "reason": "killed (out of memory?)"}
        if returncode == -signal.SIGXFSZ:
            return {**result, "status": "error", "reason": "wrote too much output"}
        how = f"signal {-returncode}" if returncode and returncode < 0 else f"exit code {returncode}"
        return {**result, "status": "kernel-died", "reason": f"the notebook's process ended early ({how})"}
    result.update(variables=data["variables"],
                  problems=data.get("problems") if isinstance(data.get("problems"), dict) else {},
                  cells=data.get("cells") if isinstance(data.get("cells"), list) else [])
    if data.get("memory_error") is True:
        return {**result, "status": "out-of-memory", "reason": "a cell ran out of memory"}
    return {**result, "status": "ok", "reason": ""}


def evaluate_answers(tests: dict, variables: dict, *, memory: int, log,
                     timeout: float = EVAL_TIMEOUT, launcher: str | None = None) -> dict:
    """Decode and test the answers in a fresh isolated interpreter."""
    with tempfile.TemporaryDirectory(prefix="grade-eval-", ignore_cleanup_errors=True) as workdir:
        request = {"tests": tests, "variables": variables, "memory": int(memory),
                   "cpu": int(timeout) + 10}
        outcome, out, returncode, seconds = _launch("evaluate", request, timeout, log, workdir, launcher)
    if outcome != "finished":
        return {"status": "timeout" if outcome == "timeout" else "error",
                "reason": "the tests did not finish", "seconds": seconds}
    try:
        data = json.loads(out)
        assert isinstance(data, dict) and isinstance(data.get("questions"), dict)
    except (ValueError, AssertionError):
        return {"status": "error", "reason": f"the tests could not run (exit code {returncode})",
                "seconds": seconds}
    return {"status": "ok", "reason": "", "seconds": seconds, **data}


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in MODES:
        _child_main(command)
    else:
        sys.exit("usage: python -m tools.sandbox run|evaluate  (internal: used by tools.grade)")
