"""The engine as installed: compiled by mypyc (setup.py), as a user's `pip install` gets it."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

import crmlite

ROOT = Path(__file__).resolve().parent.parent


def compiled_modules() -> list[str]:
    """setup.py's COMPILED, as module names."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets):
            paths = ast.literal_eval(node.value)
            return [p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("setup.py names no COMPILED modules")


@pytest.mark.skipif(os.environ.get("CRMLITE_COMPILE") == "0",
                    reason="CRMLITE_COMPILE=0 installs the engine as Python")
@pytest.mark.parametrize("name", compiled_modules())
def test_the_engine_runs_compiled(name: str) -> None:
    """The suite exercises what users run: a module setup.py compiles is an extension."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert not module.__file__.endswith(".py"), (
        f"{name} runs as Python: the build fell back (see pip's output) or is missing")
    assert crmlite.compiled()


def test_server_says_how_its_engine_runs(tmp_path: Path) -> None:
    from tests.conftest import Server

    server = Server(f"sqlite:///{tmp_path / 'crmlite.db'}")
    try:
        engine = "compiled" if crmlite.compiled() else "pure Python"
        assert server.banner[0].endswith(f"(engine: {engine})"), server.banner
    finally:
        server.stop()
