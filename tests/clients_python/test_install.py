"""`pip install ./clients/python` in a bare venv gives an importable client with consistent dependencies."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from harness.processes import ROOT

# It runs pip in a new venv (and needs the package index): the slow layer, not `make test-fast`.
pytestmark = pytest.mark.processes


def test_installs_in_a_bare_venv(tmp_path):
    # A copy without build/ and *.egg-info: what a fresh clone has (setuptools reuses a stale build/ folder).
    source = shutil.copytree(
        ROOT / "clients" / "python", tmp_path / "src", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    venv = tmp_path / "venv"
    # A venv without pip of its own: this suite's pip installs into it (`pip --python`), which spares ensurepip.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]

    install = subprocess.run(
        [*pip, "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    probe = (
        "import importlib.resources, quantum_signals_client as q;"
        "print(q.Client.__name__, importlib.resources.files(q).joinpath('py.typed').is_file())"
    )
    imported = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    assert imported.stdout.split() == ["Client", "True"], imported.stderr
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout
