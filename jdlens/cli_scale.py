"""`jdlens batch` and `jdlens market`: scoring a whole dataset of JDs and reading the market from it.

Kept out of `jdlens/cli.py` (which only registers these functions) so that file stays small; heavy
imports (torch, pyarrow, Ray, matplotlib) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def batch(
    inp: Annotated[
        Path, typer.Argument(metavar="IN", help="Parquet, JSON Lines or CSV of JDs (id, text), or a folder")
    ],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="output folder: OUT/jds/, OUT/sentences/, errors.jsonl")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="champion, models:/jdlens/N, models:/jdlens@alias or a model folder")
    ] = "champion",
    engine: Annotated[str, typer.Option(help="local (in-process) or ray (Ray Data actor pool)")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (e.g. ray://head:10001 or auto); default: a local instance")
    ] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray instance (default: all)")] = None,
    max_chars: Annotated[int, typer.Option(help="a JD longer than this many characters is a bad row")] = 100_000,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Score every JD of a dataset into Parquet (one row per JD, one per sentence); resumable."""
    from jdlens.batch import run_local
    from jdlens.cli import _load, fail
    from jdlens.engine import Engine
    from jdlens.report import load_report_config

    if engine not in ("local", "ray"):
        fail(f"--engine must be local or ray, not {engine!r}")
    if model.startswith("baseline:"):
        fail("jdlens batch scores with a trained model (champion, models:/jdlens/N or a folder), not a baseline")
    if not inp.exists():
        fail(f"{inp}: no such file or folder")
    if out.resolve() == inp.resolve() or inp.resolve() in out.resolve().parents:
        fail("OUT must not be IN or inside it")
    report_cfg = load_report_config()
    try:
        if engine == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                fail('the Ray engine needs Ray: pip install -e ".[scale]"')
            from jdlens.batch_ray import run_ray
            from jdlens.engine import Limits

            _load(model)  # fail fast, in the driver, on a model spec that does not resolve
            result = run_ray(
                inp, out, model, report_cfg, Limits(), address=address, num_cpus=num_cpus, max_chars=max_chars,
                progress=progress,
            )  # fmt: skip
        else:
            result = run_local(inp, out, Engine(_load(model), report_cfg), max_chars=max_chars, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(
        f"scored {result.scored} JDs ({result.sentences} sentences) in {result.seconds:.1f}s: "
        f"{result.jds_per_second:.1f} JDs/s, {result.sentences_per_second:.1f} sentences/s; "
        f"{result.skipped} already in {out} skipped; {result.errors} bad rows in {out / 'errors.jsonl'}"
    )


def market(
    out_dir: Annotated[Path, typer.Argument(help="a `jdlens batch` output folder")],
    title_column: Annotated[str, typer.Option(help="the carried-through column with the job title")] = "title",
) -> None:
    """The market from a batch output: role-type mix, mistake rates, scores, role type by title (PNG + markdown)."""
    from jdlens.cli import fail
    from jdlens.market import market_report

    try:
        summary = market_report(out_dir, title_column=title_column)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(f"wrote {summary} and its plots")
