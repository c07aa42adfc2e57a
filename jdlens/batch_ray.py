"""`jdlens batch --engine ray`: the same scoring on Ray Data, from one laptop to a cluster.

`read_parquet` / `read_json` / `read_csv` -> `map_batches` with a callable class on an actor pool
(`ActorPoolStrategy`: each actor loads the model once, from the registry alias or a model folder, and
scores batches with the same `Engine` and row code as the local engine) -> `write_parquet`. Without
`address` a local Ray instance sized to the machine is started (and stopped); with it, the run joins
that cluster. Needs the `scale` extra: `pip install -e ".[scale]"`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jdlens.batch import (
    ERRORS,
    JDS,
    SENTENCES,
    BatchResult,
    check_row,
    done_ids,
    input_files,
    jd_row,
    scan_ids,
    sentence_rows,
)

# Environment the actors need to resolve the model exactly as the driver does (registry, project folder).
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "JDLENS_HOME", "JDLENS_STATE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class Scorer:
    """One per actor: loads the model once, then turns pandas batches of JDs into rows.

    A batch comes back as one row per input JD with the JD columns, the sentence rows as a JSON string
    (`_sentences`) and, for a bad row, its reason (`_error`), so one pass feeds both outputs."""

    def __init__(
        self, model: str, report_cfg: dict[str, Any], limits: dict[str, Any], max_chars: int, skip: Any, dups: Any
    ) -> None:
        import torch

        from jdlens.engine import Engine, Limits
        from jdlens.predictors import load_predictor
        from jdlens.report import ReportConfig

        torch.set_num_threads(1)  # one actor per CPU: threads inside an actor would only fight each other
        self.engine = Engine(load_predictor(model), ReportConfig(**report_cfg), Limits(**limits))
        self.max_chars = max_chars
        self.skip = skip
        self.dups = dups

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        good, out = [], []
        for row in batch.to_dict("records"):
            row = {k: (None if _is_nan(v) else v) for k, v in row.items()}
            jd_id = None if row.get("id") is None else str(row["id"])
            if jd_id is not None and jd_id in self.skip:
                continue
            reason = check_row(row, self.max_chars)
            if reason is None and jd_id in self.dups:
                reason = "duplicate id (more than one row has it)"
            if reason is not None:
                out.append({"id": jd_id, "_error": reason, "_sentences": "[]"})
            else:
                good.append(row)
        good.sort(key=lambda r: len(r["text"]))
        reports = self.engine.score_many([r["text"] for r in good], [str(r["id"]) for r in good])
        for row, report in zip(good, reports, strict=True):
            out.append({**jd_row(report, row), "_error": None, "_sentences": json.dumps(sentence_rows(report))})
        # Arrow, not pandas: a batch with a bad row must not turn the integer columns into floats.
        keys = list(dict.fromkeys(k for r in out for k in r))
        return pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in out])


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _read(ray_data: Any, files: list[Path], blocks: int) -> Any:
    suffixes = {f.suffix.lower() for f in files}
    if len(suffixes) > 1:
        raise ValueError(f"the Ray engine reads one format per run; found {', '.join(sorted(suffixes))}")
    paths = [str(f) for f in files]
    suffix = suffixes.pop()
    if suffix == ".parquet":
        return ray_data.read_parquet(paths, override_num_blocks=blocks)
    if suffix == ".csv":
        return ray_data.read_csv(paths, override_num_blocks=blocks)
    return ray_data.read_json(paths, lines=True, override_num_blocks=blocks)


def init_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Join `address`, or start a local instance sized to this machine. Returns True when this call
    connected (so the caller disconnects with `ray.shutdown()`, which stops only a local instance)."""
    import ray

    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    # Actors import jdlens from the driver's checkout, as the driver does.
    env["PYTHONPATH"] = os.pathsep.join(
        x for x in (str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")) if x
    )
    runtime_env = {"env_vars": env}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        return True
    cpus = num_cpus or os.cpu_count() or 1
    try:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        avail = 4 << 30
    # The object store holds the in-flight blocks; a fifth of free memory (0.5-4 GiB) leaves room for the models.
    store = int(min(max(avail // 5, 512 << 20), 4 << 30))
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        object_store_memory=store,
        runtime_env=runtime_env,
        log_to_driver=False,
        configure_logging=False,
    )
    return True


def run_ray(
    inp: Path,
    out: Path,
    model: str,
    report_cfg: Any,
    limits: Any,
    address: str | None = None,
    num_cpus: int | None = None,
    actors: int | None = None,
    batch_size: int = 64,
    max_chars: int = 100_000,
    progress: bool = True,
) -> BatchResult:
    """Score `inp` into `out` with Ray Data; same rows as `jdlens.batch.run_local`."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    files = input_files(inp)
    out.mkdir(parents=True, exist_ok=True)
    skip = done_ids(out)
    total, dups = scan_ids(files)
    started = init_ray(address, num_cpus)
    try:
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.print_on_execution_start = False
        cpus = max(1.0, float(ray.available_resources().get("CPU", 1)))
        n_actors = actors or int(cpus)
        # One actor per CPU, each asking for a little less than one CPU: the read and write tasks need a free
        # CPU to run at all, and an actor pool holding every CPU would wait for them forever.
        actor_cpus = min(1.0, (cpus - 1) / n_actors) if cpus > 1 else 0.5
        start = time.perf_counter()
        scored = (
            # Blocks of at most 256 JDs and at least two per actor (streaming, no shuffle), so every actor
            # gets work even when the input is one file with one row group.
            _read(ray.data, files, max(2 * n_actors, -(-total // 256)))
            .repartition(target_num_rows_per_block=max(1, min(256, -(-total // (2 * n_actors)))))
            .map_batches(
                Scorer,
                fn_constructor_kwargs={
                    "model": model,
                    "report_cfg": asdict(report_cfg),
                    "limits": asdict(limits),
                    "max_chars": max_chars,
                    "skip": frozenset(skip),
                    "dups": frozenset(dups),
                },
                batch_size=batch_size,
                batch_format="pandas",
                compute=ActorPoolStrategy(size=n_actors),
                num_cpus=actor_cpus,
            )
            .materialize()  # one scoring pass feeds the JD, sentence and error outputs
        )
        ok = scored.filter(lambda r: r["_error"] is None)
        # Sentences first, JDs last: an id counts as done (resume) only once its JD row is written.
        sentences = ok.select_columns(["_sentences"]).flat_map(lambda r: json.loads(r["_sentences"]))
        n_sent = sentences.count()
        if n_sent:
            sentences.write_parquet(str(out / SENTENCES))
        ok.drop_columns(["_error", "_sentences"]).write_parquet(str(out / JDS))
        bad = scored.filter(lambda r: r["_error"] is not None).select_columns(["id", "_error"]).take_all()
        with (out / ERRORS).open("a", encoding="utf-8") as fh:
            for r in bad:
                fh.write(json.dumps({"id": r["id"], "where": None, "reason": r["_error"]}) + "\n")
        n_ok = ok.count()
        return BatchResult(n_ok, n_sent, len(bad), len(skip), time.perf_counter() - start)
    finally:
        if started:
            ray.shutdown()
