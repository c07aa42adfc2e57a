"""A shared MLflow server on PostgreSQL, for real: a throwaway cluster, `mlflow server` on it, and the whole
train / models / compare / promote / retrain loop through MLFLOW_TRACKING_URI, with two concurrent trains.

Needs the PostgreSQL server binaries (Debian's `postgresql` package; `.ci/run` installs it) and
psycopg2 (the dev extra). initdb/pg_ctl refuse to run as root, so as root they run as `postgres`.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jdlens import tracking
from jdlens.cli import app
from serving.launch import free_port, running
from tests.conftest import tiny_overrides, write_jsonl

pytestmark = pytest.mark.integration


def pg_bin() -> Path | None:
    """The folder with initdb and pg_ctl (Debian keeps them out of PATH, under /usr/lib/postgresql/N/bin)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent  # e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    return Path(dirs[-1]) if dirs and Path(dirs[-1], "initdb").exists() else None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture()
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a `mlflow` database; yields its SQLAlchemy URI and
    always stops the cluster and removes its folder."""
    pytest.importorskip("psycopg2")
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="jdlens-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", free_port()

    def pg(*args: str) -> None:
        res = subprocess.run(_as_postgres(list(args)), capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, f"{args[0]} failed: {res.stdout}{res.stderr}"

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-h 127.0.0.1 -p {port} -k {base}"
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "pg.log"), "-w", "start")
        try:
            pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow")
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
        finally:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture()
def pg_mlflow(postgres: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", postgres, "--artifacts-destination", str(tmp_path / "artifacts")]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, f"{url}/health", tmp_path / "mlflow.log", timeout=120, name="mlflow server"):
        yield url


def cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def test_team_loop_on_postgres(
    project: Path, tiny_encoder: Path, pg_mlflow: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_mlflow)
    assert "registered jdlens version 1 as @champion" in cli("train", *tiny_overrides(tiny_encoder))
    assert not (project / ".jdlens" / "mlflow.db").exists()  # nothing went to the embedded store

    # The registered version is an MLflow pyfunc: loads by alias with no jdlens glue.
    tracking.setup()
    model = mlflow.pyfunc.load_model("models:/jdlens@champion")
    pred = model.predict(pd.DataFrame({"text": ["Fine-tune Llama with LoRA and serve it with vLLM."]}))
    assert pred["role_type"].iloc[0] in ("application", "ml", "research", "mixed") and 0 <= pred["score"].iloc[0] <= 100

    # Two teammates train at once against the same server: both register, versions distinct.
    env = {**os.environ, "MLFLOW_TRACKING_URI": pg_mlflow}
    cmd = [sys.executable, "-c", "from jdlens.cli import main; main()", "train", *tiny_overrides(tiny_encoder)]
    logs = [(tmp_path / f"train{i}.log").open("w") for i in range(2)]
    procs = [subprocess.Popen(cmd, env=env, cwd=project, stdout=f, stderr=subprocess.STDOUT) for f in logs]
    codes = [p.wait(timeout=900) for p in procs]
    outputs = [(tmp_path / f"train{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], outputs
    client = tracking.setup()
    registered = sorted(int(v.version) for v in tracking.versions(client))
    assert registered == [1, 2, 3]
    assert all("as @challenger" in o for o in outputs)
    assert tracking.alias_version(client, "champion") == "1"  # unchanged: nobody promoted
    assert tracking.alias_version(client, "challenger") in ("2", "3")

    listing = cli("models")
    assert all(f"\n{v} " in "\n" + listing for v in ("1", "2", "3")) and "champion" in listing
    assert "delta vs champion (v1)" in cli("compare", "1", "2", "3")
    assert "version 2 is now the champion" in cli("promote", "2", "--force")
    new = [{"text": "Stand up a Qdrant-backed retrieval layer for our support copilot.", "role": "application"}]
    out = cli(
        "retrain",
        str(write_jsonl(project / "new.jsonl", [{**r, "flags": []} for r in new])),
        "--promote",
        "never",
        "--no-embeddings",
        *tiny_overrides(tiny_encoder),
    )
    assert "kept as challenger (policy never)" in out
    assert tracking.alias_version(client, "champion") == "2" and tracking.alias_version(client, "challenger") == "4"
