"""The README's first command, on a copy of the project, answers the README's seed requests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from tests.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", body, re.S)


def test_readme_start_command_serves_the_seed_requests(tmp_path: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    copy = tmp_path / "crmlite"
    for name in files:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    [start] = bash_blocks("Start the server")
    port = free_port()
    proc = subprocess.Popen(["bash", "-c", f"{start.strip()} --port {port}"], cwd=copy,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        token, seen = None, []
        deadline = time.monotonic() + 600
        assert proc.stdout is not None
        while time.monotonic() < deadline and token is None:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"access token .*: (1000\.\S+)", line)
            token = found.group(1) if found else None
        assert token, "".join(seen[-30:])
        assert (copy / "crmlite.db").exists()
        field_block, seed_block = bash_blocks("Worked example")
        env = {**os.environ, "TOKEN": token}
        script = (field_block + seed_block).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        for _ in range(100):  # the port may open a moment after the banner
            ping = subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"])
            if ping.returncode == 0:
                break
            time.sleep(0.1)
        out = subprocess.run(["bash", "-c", script.replace("curl -s", "curl -s -w '\\n'")],
                             env=env, capture_output=True, text=True, timeout=60, check=True)
        replies = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        assert replies[0]["fields"][0]["code"] == "SUCCESS"
        items = [r["data"][0] for r in replies[1:]]
        assert [(i["action"], i["duplicate_field"]) for i in items] == [
            ("insert", None), ("update", "External_Contact_ID"), ("update", "Email")]
        assert len({i["details"]["id"] for i in items}) == 1
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
