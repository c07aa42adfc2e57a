"""Comparing and promoting registered versions of `jdlens` (the MLflow model registry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jdlens import tracking

LIST_METRICS = (
    "test_sent_role_macro_f1",
    "test_sent_flag_phd_required_f1",
    "test_sent_flag_buzzword_f1",
    "test_sent_flag_vague_seniority_f1",
    "test_jd_role_type_accuracy",
)


@dataclass
class VersionInfo:
    version: str
    aliases: list[str]
    run_id: str
    created: int
    metrics: dict[str, float]
    params: dict[str, str]
    datasets: dict[str, str]


def version_info(client: Any, mv: Any) -> VersionInfo:
    run = client.get_run(mv.run_id)
    datasets = {d.dataset.name: d.dataset.digest for d in (run.inputs.dataset_inputs if run.inputs else [])}
    return VersionInfo(
        str(mv.version),
        list(mv.aliases or []),
        mv.run_id,
        int(mv.creation_timestamp or 0),
        dict(run.data.metrics),
        dict(run.data.params),
        datasets,
    )


def all_versions(client: Any) -> list[VersionInfo]:
    return [version_info(client, mv) for mv in tracking.versions(client)]


def format_models(infos: list[VersionInfo]) -> str:
    if not infos:
        return f"no registered versions of {tracking.REGISTERED_MODEL!r} in {tracking.tracking_uri()}"
    short = {
        "test_sent_role_macro_f1": "role_F1",
        "test_sent_flag_phd_required_f1": "phd_F1",
        "test_sent_flag_buzzword_f1": "buzz_F1",
        "test_sent_flag_vague_seniority_f1": "vague_F1",
        "test_jd_role_type_accuracy": "jd_acc",
    }
    head = f"{'version':<8}{'aliases':<22}" + "".join(f"{short[m]:>10}" for m in LIST_METRICS) + "  run"
    rows = [head]
    for v in infos:
        vals = "".join(f"{v.metrics.get(m, float('nan')):>10.4f}" for m in LIST_METRICS)
        rows.append(f"{v.version:<8}{','.join(v.aliases) or '-':<22}{vals}  {v.run_id[:12]}")
    return "\n".join(rows)


def _num(x: float | None, width: int) -> str:
    if x is None:
        return f"{'-':>{width}}"
    if abs(x) >= 1000 or float(x).is_integer():
        return f"{x:>{width},.0f}"
    return f"{x:>{width}.4f}"


def format_compare(infos: list[VersionInfo], champion: str | None) -> str:
    """Every metric side by side, deltas against the champion, then the dataset hashes."""
    base = next((v for v in infos if v.version == champion), None)
    cols = [f"v{v.version}" + ("*" if v.version == champion else "") for v in infos]
    width = max(12, *(len(c) + 2 for c in cols))
    names = sorted({m for v in infos for m in v.metrics})
    lines = [
        f"{'metric':<40}"
        + "".join(f"{c:>{width}}" for c in cols)
        + ("" if base is None else "   delta vs champion (v" + str(champion) + ")")
    ]
    for name in names:
        vals = [v.metrics.get(name) for v in infos]
        row = f"{name:<40}" + "".join(_num(x, width) for x in vals)
        if base is not None and name in base.metrics:
            deltas = [f"{x - base.metrics[name]:+.4f}" if x is not None else "-" for x in vals]
            row += "   " + " ".join(deltas)
        lines.append(row)
    lines += ["", "params that differ:"]
    keys = sorted({k for v in infos for k in v.params})
    for k in keys:
        vals = [v.params.get(k, "-") for v in infos]
        if len(set(vals)) > 1:
            lines.append(f"  {k:<38}" + "".join(f"{str(x)[: width - 1]:>{width}}" for x in vals))
    lines += ["", "dataset hashes:"]
    for name in sorted({d for v in infos for d in v.datasets}):
        lines.append(f"  {name:<38}" + "".join(f"{v.datasets.get(name, '-'):>{max(width, 18)}}" for v in infos))
    lines.append("(* = champion)")
    return "\n".join(lines)


def promote(client: Any, version: str, force: bool = False) -> str:
    """Move `champion` to `version`; refuse a version worse on test role macro-F1 unless forced."""
    mv = tracking.resolve_version(client, f"models:/{tracking.REGISTERED_MODEL}/{version}")
    current = tracking.alias_version(client, tracking.CHAMPION)
    if current == str(mv.version):
        return f"version {mv.version} is already the champion"
    if current is not None and not force:
        new = tracking.run_metrics(client, mv.run_id).get(tracking.KEY_METRIC)
        cur_mv = client.get_model_version(tracking.REGISTERED_MODEL, current)
        old = tracking.run_metrics(client, cur_mv.run_id).get(tracking.KEY_METRIC)
        if new is None or (old is not None and new < old):
            raise PermissionError(
                f"version {mv.version} has {tracking.KEY_METRIC}={new} below the champion (version {current}, "
                f"{old}); use --force to promote anyway"
            )
    client.set_registered_model_alias(tracking.REGISTERED_MODEL, tracking.CHAMPION, mv.version)
    if tracking.alias_version(client, tracking.CHALLENGER) == str(mv.version):
        client.delete_registered_model_alias(tracking.REGISTERED_MODEL, tracking.CHALLENGER)
    return f"version {mv.version} is now the champion (was {current})"
