"""Batch scoring benchmark: `jdlens batch` with the local engine vs the Ray engine, same JDs, same run.

    python -m serving.batch_benchmark [--model champion|FOLDER] [--jds 240] [--out BENCH.json]

Without --model it scores with an untrained 8-label head on the real base encoder (all-MiniLM-L6-v2):
the same FLOPs per sentence as a trained jdlens model, so the speed is the trained model's, with no
training needed. The JDs are the repo's JDs (dev, test, realistic splits) repeated under new ids.
Both engines get the whole machine: the local engine one process with torch's threads, Ray one actor
per CPU on a local instance. Ray's time includes starting its actors and loading the model in each
(not starting Ray itself, reported apart). `--ray-first` swaps the order, to see how much of a
difference is the machine's load changing between the two. Prints a markdown table and a sizing table for 1M and 10M
postings an hour from the measured per-CPU rates; writes everything as JSON with --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from jdlens.config import repo_root

TARGETS_PER_HOUR = (1_000_000, 10_000_000)


def make_input(folder: Path, n: int) -> Path:
    """n JDs (the repo's JDs repeated with new ids) as one Parquet file with a `title` column."""
    import pandas as pd

    src = []
    for split in ("dev", "test", "realistic_dev", "realistic_test"):
        path = repo_root() / "data" / "jds" / f"{split}.jsonl"
        if path.exists():
            src += [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = []
    for i in range(n):
        r = src[i % len(src)]
        title = r["text"].lstrip("# ").splitlines()[0][:80]
        rows.append({"id": f"bench-{i:07d}", "text": r["text"], "title": title})
    path = folder / "jds.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def untrained_model(folder: Path) -> Path:
    """An 8-label head on the real base encoder: a trained model's compute, without training."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from jdlens.labels import ID2LABEL, LABEL2ID
    from jdlens.model import JDLensClassifier
    from jdlens.paths import DEFAULT_BASE_MODEL, offline_by_default, resolve_base_model

    offline_by_default()
    base = resolve_base_model(DEFAULT_BASE_MODEL)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=8, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
    )
    meta = {"name": "untrained-minilm", "max_length": 128}
    JDLensClassifier(model, AutoTokenizer.from_pretrained(base), meta).save(folder)
    return folder


def run(model: str | None, n: int, num_cpus: int | None, ray_first: bool = False) -> dict[str, Any]:
    import ray

    from jdlens.batch import run_local
    from jdlens.batch_ray import init_ray, run_ray
    from jdlens.engine import Engine, Limits
    from jdlens.predictors import load_predictor
    from jdlens.report import load_report_config

    cpus = num_cpus or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="jdlens-batch-bench-") as tmp:
        tmp_path = Path(tmp)
        spec = model or str(untrained_model(tmp_path / "model"))
        inp = make_input(tmp_path, n)
        cfg = load_report_config()
        t0 = time.perf_counter()
        engine = Engine(load_predictor(spec), cfg)
        local_load = time.perf_counter() - t0
        if not ray_first:
            local = run_local(inp, tmp_path / "out-local", engine, progress=False)
        t0 = time.perf_counter()
        init_ray(None, cpus)
        ray_start = time.perf_counter() - t0
        try:
            on_ray = run_ray(inp, tmp_path / "out-ray", spec, cfg, Limits(), num_cpus=cpus, progress=False)
        finally:
            ray.shutdown()
        if ray_first:
            local = run_local(inp, tmp_path / "out-local", engine, progress=False)
    result: dict[str, Any] = {
        "machine": {"cpus": cpus, "platform": platform.platform(), "processor": platform.processor()},
        "model": model or "untrained head on all-MiniLM-L6-v2 (same compute as a trained model)",
        "jds": n,
        "order": "ray, local" if ray_first else "local, ray",
        "load_average_1m": os.getloadavg()[0],
        "sentences": local.sentences,
        "sentences_per_jd": local.sentences / max(1, local.scored),
        "local": {
            "seconds": local.seconds,
            "jds_per_s": local.jds_per_second,
            "sentences_per_s": local.sentences_per_second,
            "model_load_s": local_load,
        },
        "ray": {
            "seconds": on_ray.seconds,
            "jds_per_s": on_ray.jds_per_second,
            "sentences_per_s": on_ray.sentences_per_second,
            "ray_start_s": ray_start,
            "actors": cpus,
        },
    }
    result["ray_vs_local"] = on_ray.jds_per_second / local.jds_per_second
    result["sizing"] = sizing(result)
    return result


def sizing(result: dict[str, Any]) -> list[dict[str, Any]]:
    """CPU cores (one Ray actor each) to score 1M and 10M postings in an hour, from the measured rates."""
    cpus = result["machine"]["cpus"]
    rows = []
    for name in ("local", "ray"):
        per_cpu = result[name]["jds_per_s"] / cpus
        for target in TARGETS_PER_HOUR:
            need = target / 3600
            rows.append(
                {
                    "engine": name,
                    "postings_per_hour": target,
                    "jds_per_s_needed": need,
                    "jds_per_s_per_cpu": per_cpu,
                    "cpus": math.ceil(need / per_cpu),
                    "machines_16_cpu": math.ceil(need / per_cpu / 16),
                }
            )
    return rows


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"{r['jds']} JDs, {r['sentences']} sentences ({r['sentences_per_jd']:.1f} per JD), "
        f"{r['machine']['cpus']} CPUs (1-min load average {r['load_average_1m']:.1f} at the end), order "
        f"{r['order']}; model: {r['model']}",
        "",
        "| engine | seconds | JDs/s | sentences/s | vs local |",
        "|---|---:|---:|---:|---:|",
        f"| local (one process, {r['machine']['cpus']} torch threads) | {r['local']['seconds']:.1f} | "
        f"{r['local']['jds_per_s']:.2f} | {r['local']['sentences_per_s']:.1f} | 1.00 |",
        f"| Ray Data ({r['ray']['actors']} actors, incl. actor start + model load) | {r['ray']['seconds']:.1f} | "
        f"{r['ray']['jds_per_s']:.2f} | {r['ray']['sentences_per_s']:.1f} | {r['ray_vs_local']:.2f} |",
        "",
        f"Ray instance start: {r['ray']['ray_start_s']:.1f} s; local model load: {r['local']['model_load_s']:.1f} s.",
        "",
        "| engine | postings/hour | JDs/s needed | JDs/s per CPU (measured) | CPUs | 16-CPU machines |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in r["sizing"]:
        lines.append(
            f"| {s['engine']} | {s['postings_per_hour']:,} | {s['jds_per_s_needed']:.0f} | "
            f"{s['jds_per_s_per_cpu']:.2f} | {s['cpus']:,} | {s['machines_16_cpu']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="champion, models:/jdlens/N or a folder (default: untrained head)")
    ap.add_argument("--jds", type=int, default=240)
    ap.add_argument("--num-cpus", type=int, default=None)
    ap.add_argument("--ray-first", action="store_true", help="run Ray before the local engine (order check)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    result = run(args.model, args.jds, args.num_cpus, args.ray_first)
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
