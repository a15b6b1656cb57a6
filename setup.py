"""Compiles the engine's per-record modules to C with mypyc; everything else is in pyproject.toml.

The modules below are plain, type-checked Python: mypyc turns each into a C extension that
runs the same code without the interpreter's per-line cost (an upsert's validation,
planning and reply cost the server about a sixth less CPU, a 200-record list a quarter
less: bench/RESULTS.md). The ``.py``
files ship beside them and are what runs when the extensions are not built:

- ``CRMLITE_COMPILE=0`` skips the build (pure Python, for platforms without a C compiler);
- without a working C compiler the build warns and installs pure Python.

The HTTP layer (Starlette calls its endpoints, which must stay Python functions) and the
stores (tests and the bench replace their methods) stay interpreted.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "src/crmlite/schema/datatypes.py",
    "src/crmlite/schema/dictionary.py",
    "src/crmlite/auth/principal.py",
    "src/crmlite/records/external.py",
    "src/crmlite/records/keys.py",
    "src/crmlite/records/stored.py",
    "src/crmlite/records/validation.py",
    "src/crmlite/records/render.py",
    "src/crmlite/records/new.py",
    "src/crmlite/records/writer.py",
    "src/crmlite/records/reader.py",
    "src/crmlite/records/search.py",
    "src/crmlite/records/deletion.py",
]


class OptionalBuildExt(build_ext):
    """Builds the extensions, or none of them: a failed compile leaves pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler or linker failure
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            print(f"warning: crmlite's engine not compiled ({exc}); installing pure Python",
                  file=sys.stderr)


def extensions() -> list:
    if os.environ.get("CRMLITE_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    return mypycify(COMPILED, opt_level="3", group_name="crmlite_engine")


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
