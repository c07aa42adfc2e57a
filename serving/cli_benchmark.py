"""Cold CLI benchmark: wall time of `jdlens score FILE` and `jdlens predict` (100 sentences), each in a new
process, with the default `--model champion`, and the time from starting `jdlens serve` to `/ping` Healthy.

    python -m serving.cli_benchmark [--runs 5] [--before OTHER_CHECKOUT] [--out CLI_BENCH.json]

Uses the project's MLflow store when it has a champion. Otherwise it builds a throwaway store under a
temporary state folder whose champion is a MiniLM-sized model (the packaged base encoder with an untrained
8-label head: the same size, load time and inference cost as a trained one). The first call of each
command fills the local model cache and is reported apart ("first"); the figure that matters is the median
of the later, cold-process runs. `--before DIR` times another checkout of jdlens (e.g. `git archive` of an
older commit) on the same store, interleaved run by run, and reports after/before ratios from this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGETS_S = {"score": 3.0, "predict": 4.0, "serve": 10.0}


def build_store(state: Path | str) -> None:
    """A fresh MLflow store in `state` whose champion is a MiniLM-sized jdlens model (untrained head)."""
    state = Path(state)
    os.environ["JDLENS_STATE"] = str(state)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    import mlflow
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from jdlens import tracking
    from jdlens.labels import ID2LABEL, LABEL2ID
    from jdlens.model import JDLensClassifier
    from jdlens.paths import DEFAULT_BASE_MODEL, offline_by_default, resolve_base_model
    from training.run import register

    offline_by_default()
    base = resolve_base_model(DEFAULT_BASE_MODEL)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(ID2LABEL), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
    )
    folder = state / "bench-model"
    JDLensClassifier(model, AutoTokenizer.from_pretrained(base), {"name": "jdlens", "max_length": 128}).save(folder)
    client = tracking.setup()
    with mlflow.start_run(run_name="cli-benchmark") as run:
        mlflow.log_artifacts(str(folder), "model")
        register(client, run.info.run_id, run.info.artifact_uri, {})


def has_champion(env: dict[str, str]) -> bool:
    code = "from jdlens import tracking; c = tracking.setup(); print(tracking.alias_version(c, 'champion'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() not in ("", "None")


def inputs(folder: Path, root: Path) -> tuple[Path, Path]:
    """One realistic JD (the first test JD) and 100 test sentences as JSON Lines."""
    jd = json.loads((root / "data/jds/test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    jd_file = folder / "jd.txt"
    jd_file.write_text(jd["text"], encoding="utf-8")
    lines = [x for x in (root / "data/sentences/test.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    sents = folder / "sentences.jsonl"
    sents.write_text("".join(json.dumps({"text": json.loads(x)["text"]}) + "\n" for x in lines[:100]))
    return jd_file, sents


def time_command(code_dir: Path, args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of `jdlens ARGS` run from `code_dir`'s code, in a new process (imports included)."""
    cmd = [sys.executable, "-c", "from jdlens.cli import main; main()", *args]
    run_env = {**env, "PYTHONPATH": str(code_dir), "JDLENS_HOME": str(code_dir)}  # its own configs/
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=code_dir, env=run_env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {code_dir}: {done.stderr[-2000:]}")
    return wall


def time_serve(code_dir: Path, env: dict[str, str], log: Path) -> float:
    """Seconds from starting `jdlens serve` (`code_dir`'s code, default champion) to GET /ping answering 200."""
    from serving.launch import free_port, running

    port = free_port()
    cmd = [sys.executable, "-c", "from jdlens.cli import main; main()", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port)]
    run_env = {**env, "PYTHONPATH": str(code_dir), "JDLENS_HOME": str(code_dir)}
    run_env |= {"JDLENS_API_KEY": "bench", "JDLENS_ADMIN_KEY": "bench-admin"}
    url = f"http://127.0.0.1:{port}/ping"
    with running(cmd, url, log, env=run_env, cwd=code_dir, timeout=300, name="jdlens serve") as seconds:
        return seconds


def run(runs: int, before: Path | None, state: Path | None) -> dict[str, Any]:
    env = {**os.environ, "JDLENS_HOME": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="jdlens-cli-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if state is not None:
            env["JDLENS_STATE"] = str(state)
        if not has_champion(env):
            store = tmp / "state"
            subprocess.run(
                [sys.executable, "-c", f"from serving.cli_benchmark import build_store; build_store({str(store)!r})"],
                cwd=REPO,
                env=env,
                check=True,
            )
            env["JDLENS_STATE"] = str(store)
            env.pop("MLFLOW_TRACKING_URI", None)
            model_note = "throwaway store: MiniLM-sized champion with an untrained head"
        else:
            model_note = "the project's champion"
        jd_file, sents = inputs(tmp, REPO)
        commands = {"score": ["score", str(jd_file)], "predict": ["predict", str(sents)], "serve": []}
        checkouts = {"after": REPO} | ({"before": before.resolve()} if before else {})

        def timed(d: Path, cmd: str) -> float:
            return time_serve(d, env, tmp / "serve.log") if cmd == "serve" else time_command(d, commands[cmd], env)

        first = {f"{name}/{cmd}": timed(d, cmd) for name, d in checkouts.items() for cmd in commands}
        times: dict[str, list[float]] = {key: [] for key in first}
        for _ in range(runs):  # interleaved, so machine load affects every variant alike
            for name, d in checkouts.items():
                for cmd in commands:
                    times[f"{name}/{cmd}"].append(timed(d, cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {
        "model": model_note,
        "runs": runs,
        "first_run_s": first,
        "median_s": med,
        "all_s": times,
        "targets_s": TARGETS_S,
    }
    if before:
        result["speedup_before_over_after"] = {c: med[f"before/{c}"] / med[f"after/{c}"] for c in commands}
    return result


def format_table(r: dict[str, Any]) -> str:
    rows = [
        "| command | first run (fills the cache) s | median cold s | target s |"
        + (" before s | speedup |" if "speedup_before_over_after" in r else ""),
        "|---|---:|---:|---:|" + ("---:|---:|" if "speedup_before_over_after" in r else ""),
    ]
    for cmd in ("score", "predict", "serve"):
        label = "`jdlens serve` to /ping Healthy" if cmd == "serve" else f"`jdlens {cmd}`"
        row = f"| {label} | {r['first_run_s'][f'after/{cmd}']:.2f} | {r['median_s'][f'after/{cmd}']:.2f} | {TARGETS_S[cmd]:.0f} |"
        if "speedup_before_over_after" in r:
            row += f" {r['median_s'][f'before/{cmd}']:.2f} | {r['speedup_before_over_after'][cmd]:.2f}x |"
        rows.append(row)
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m serving.cli_benchmark", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="cold runs per command after the first (default 5)")
    ap.add_argument("--before", type=Path, default=None, help="another jdlens checkout to compare against")
    ap.add_argument(
        "--state", type=Path, default=None, help="state folder with the MLflow store (default: the project's)"
    )
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    result = run(args.runs, args.before, args.state)
    print(format_table(result))
    print(json.dumps({k: result[k] for k in ("model", "median_s", "first_run_s")}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
