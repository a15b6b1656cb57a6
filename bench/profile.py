"""Summarise py-spy's raw (collapsed-stack) output: where the server's time goes.

``python -m bench.profile FILE [FILE ...] [--top N] [--only crmlite]``

Prints, per file, the frames with the most samples on the CPU by themselves ("self") and
including what they call ("total"), as ``function (file:line)``, in percent of all samples.
Record the files with ``python -m bench.run --profile DIR``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path}{':' + m['line'] if m['line'] else ''})"


def function_of(frame: str) -> str:
    """The frame without its line number: a function's samples added up."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return short(f"{m['func']} ({m['file']})")


def summarise(path: Path, top: int, only: str | None,
              skip: tuple[str, ...] = ("crmlite/store/",)) -> str:
    self_lines: Counter[str] = Counter()
    total_funcs: Counter[str] = Counter()
    self_funcs: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        samples += n
        self_lines[short(frames[-1])] += n
        self_funcs[function_of(frames[-1])] += n
        for f in {function_of(f) for f in frames}:
            total_funcs[f] += n
        if only:  # also charge the innermost line of ours (past the store's wrappers)
            ours = [f for f in frames if only in f and not any(s in f for s in skip)]
            if ours:
                self_lines[f"  [{only}] " + short(ours[-1])] += n
    if not samples:
        return f"{path.name}: no samples"

    def block(title: str, counter: Counter[str], keep=lambda k: True) -> list[str]:
        rows = [f"  {title}"]
        for key, n in [kv for kv in counter.most_common() if keep(kv[0])][:top]:
            rows.append(f"  {100 * n / samples:5.1f}%  {key}")
        return rows

    out = [f"{path.name}: {samples} samples"]
    out += block("self, by function", self_funcs)
    out += block("total (inclusive), by function", total_funcs,
                 (lambda k: only in k) if only else (lambda k: True))
    if only:
        out += block(f"innermost {only} line on the stack (not counting {', '.join(skip)})",
                     self_lines,
                     lambda k: k.startswith(f"  [{only}]"))
    out += block("self, by line", self_lines, lambda k: not k.startswith("  ["))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--only", default="crmlite", help="substring of our frames ('' for none)")
    args = p.parse_args(argv)
    for f in args.files:
        print(summarise(f, args.top, args.only or None))
        print()


if __name__ == "__main__":
    main()
