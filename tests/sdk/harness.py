"""Running Zoho's SDKs: a virtual environment for zohocrmsdk7-0, the driver, the server.

zohocrmsdk8-0 and zohocrmsdk7-0 both install the package ``zohocrmsdk``, so they cannot
share an environment: zohocrmsdk8-0 comes with the test dependencies (pyproject's ``test``
extra), zohocrmsdk7-0 goes into ``.venv-sdk7`` at the repository's root, which the first
test that needs it builds from ``requirements-sdk7.txt`` (and rebuilds when that changes).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from tests import conftest
from tests.conftest import Server

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = HERE / "driver.py"
SDK7_REQUIREMENTS = HERE / "requirements-sdk7.txt"
SDK7_VENV = REPO / ".venv-sdk7"


def sdk7_python() -> Path:
    """The interpreter of ``.venv-sdk7``, built first if it is missing or out of date."""
    python = SDK7_VENV / "bin" / "python"
    marker = SDK7_VENV / "crmlite-requirements.sha256"
    wanted = hashlib.sha256(SDK7_REQUIREMENTS.read_bytes()).hexdigest()
    with open(REPO / ".venv-sdk7.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder, whatever runs the tests in parallel
        if python.exists() and marker.exists() and marker.read_text() == wanted:
            return python
        shutil.rmtree(SDK7_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(SDK7_VENV)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-r", str(SDK7_REQUIREMENTS)], check=True, timeout=900)
        marker.write_text(wanted)
    return python


def sdk_python(sdk: str) -> Path:
    if sdk == "zohocrmsdk8-0":
        return Path(sys.executable)  # installed with the test dependencies
    return sdk7_python()


def run_driver(python: Path, config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run the driver with the SDK of ``python``; what it observed."""
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(python), str(DRIVER)], input=json.dumps(
        {**config, "workdir": str(workdir)}), capture_output=True, text=True, timeout=180,
        cwd=workdir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@contextmanager
def readme_command() -> Iterator[None]:
    """Servers started meanwhile run ``crmlite serve``, the README's command (its console
    script, next to the interpreter), instead of ``python -m crmlite serve``."""
    script = Path(sys.executable).with_name("crmlite")
    assert script.exists(), f"{script} is missing: install the project (pip install -e .)"
    with mock.patch.object(conftest, "CRMLITE", [str(script)]):
        yield


def readme_server(database_url: str) -> Server:
    with readme_command():
        return Server(database_url)
