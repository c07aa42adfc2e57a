"""Run the README's "Using it" commands as a new user would (tiny model, real processes)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import jdlens_server

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent
JD = "# ML Engineer\nWe build fraud models.\n## Requirements\n- Train models with PyTorch.\n- PhD in CS required.\n"


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Using it\s+```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("jdlens ")]


def test_readme_commands_work(project: Path, tiny_model_dir: Path) -> None:
    (project / "my_jd.txt").write_text(JD)
    (project / "jds.jsonl").write_text(json.dumps({"id": "a", "text": JD}) + "\n")
    (project / "sentences.jsonl").write_text(json.dumps({"text": "Build RAG with pgvector."}) + "\n")
    env = {**os.environ, "JDLENS_API_KEY": "k"}
    cmds = readme_commands()
    assert len(cmds) >= 5, cmds
    for cmd in cmds:
        args = shlex.split(cmd)[1:]
        args = [str(tiny_model_dir) if a == "champion" else a for a in args]
        if "--model" not in args:
            args += ["--model", str(tiny_model_dir)]
        if args[0] == "serve":
            log = project / "serve.log"
            with jdlens_server(args[1:], env, log, project) as base:
                r = httpx.post(f"{base}/v1/score", json={"text": JD}, timeout=30)
                assert r.status_code == 200 and r.json()["sentences"]
            assert f"{base}/" in log.read_text()  # the address is printed
            continue
        res = subprocess.run(
            [sys.executable, "-m", "jdlens.cli", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, f"{cmd}: {res.stderr[-2000:]}"
        if args[0] == "score" and "--jsonl" in args:
            assert json.loads(res.stdout.splitlines()[0])["id"] == "a"
        elif args[0] == "score":
            assert json.loads(res.stdout)["role_type"] in ("application", "ml", "research", "mixed")
        elif args[0] == "predict":
            assert set(json.loads(res.stdout.splitlines()[0])) == {
                "text",
                "role",
                "role_scores",
                "flags",
                "flag_scores",
            }
        elif args[0] == "eval":
            assert "role macro-F1" in res.stdout and "Whole JDs" in res.stdout


def test_bad_cli_input_gets_clear_errors(project: Path, tiny_model_dir: Path) -> None:
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "jdlens.cli", *args],
            cwd=project,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    r = run("predict", "-", "--model", str(tiny_model_dir), stdin='{"txt": 1}\n')
    assert r.returncode == 2 and "-:1: each line must be a JSON object" in r.stderr
    r = run("score", "missing.txt", "--model", "baseline:keywords")
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run("score", "-", "--model", "baseline:nope", stdin="Build RAG.")
    assert r.returncode == 2 and "unknown baseline" in r.stderr
    r = run("eval", "--model", "champion")
    assert r.returncode == 2 and "no model version has alias 'champion'" in r.stderr
    r = run("train", "epochz=3")
    assert r.returncode == 2 and "unknown config key" in r.stderr
    bad = project / "bad.jsonl"
    bad.write_text('{"text": "fine sentence", "role": "ml"}\n{"text": "x", "role": "bogus"}\n')
    r = run("data", "validate", str(bad), "--no-embeddings")
    assert r.returncode == 1 and f"{bad}:2: 'role' is 'bogus'" in r.stdout
    before = (project / "data/sentences/train.jsonl").read_bytes()
    r = run("data", "add", str(bad), "--split", "train", "--no-embeddings")
    assert r.returncode == 1 and "nothing was added" in r.stderr
    assert (project / "data/sentences/train.jsonl").read_bytes() == before
