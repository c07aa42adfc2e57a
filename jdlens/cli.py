"""The `jdlens` command: one entry point, each sub-command a typed function.

Heavy imports (torch, transformers, mlflow) happen inside the commands so that `jdlens --help` is instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from jdlens.config import repo_root

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reads job descriptions for AI roles: which role they describe and what is wrong.",
)
data_app = typer.Typer(no_args_is_help=True, help="Validate and grow the labelled data.")
feedback_app = typer.Typer(no_args_is_help=True, help="Reviewer corrections collected by the service.")
app.add_typer(data_app, name="data")
app.add_typer(feedback_app, name="feedback")

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="champion, models:/jdlens/N, models:/jdlens@alias, a model folder, baseline:keywords or baseline:tfidf",
    ),
]


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _read_input(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    path = Path(file)
    if not path.is_file():
        fail(f"{file}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text")
    return ""


def _jsonl_rows(file: str, need: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for no, raw in enumerate(_read_input(file).splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            fail(f"{file}:{no}: invalid JSON ({exc.msg})")
        if not isinstance(obj, dict) or any(not isinstance(obj.get(k), str) for k in need):
            fail(f"{file}:{no}: each line must be a JSON object with string field(s) {', '.join(need)}")
        rows.append(obj)
    return rows


def _load(model: str, quantize: str | None = None, backend: str | None = None) -> Any:
    from jdlens.predictors import load_predictor

    try:
        return load_predictor(model, quantize=quantize, backend=backend)
    except (ValueError, LookupError, FileNotFoundError) as exc:
        fail(str(exc))


# ---------------------------------------------------------------- data


@data_app.command("validate")
def data_validate(
    paths: Annotated[list[Path], typer.Argument(help="files or folders (e.g. data/)")],
    embeddings: Annotated[bool, typer.Option(help="also check near duplicates by embedding similarity")] = True,
) -> None:
    """Check schema, label names, duplicates and train/test overlap; prints file:line: reason."""
    from jdlens.validate import validate_paths

    problems, summary = validate_paths(paths, use_embeddings=embeddings)
    for p in problems:
        typer.echo(str(p))
    typer.echo(summary)
    if problems:
        raise typer.Exit(1)


@data_app.command("add")
def data_add(
    file: Path,
    split: Annotated[str, typer.Option(help="train, dev (whole JDs) or test")] = "train",
    embeddings: Annotated[bool, typer.Option(help="check near duplicates of held-out data")] = True,
) -> None:
    """Validate FILE and append its new records to a split atomically; on any error nothing changes."""
    from jdlens.datastore import DataStore

    try:
        result = DataStore(repo_root()).add(file, split, use_embeddings=embeddings)
    except ValueError as exc:
        fail(str(exc))
    if result.problems:
        for p in result.problems:
            typer.echo(str(p), err=True)
        fail(f"{len(result.problems)} problem(s) in {file}; nothing was added", 1)
    for target, n in result.added.items():
        typer.echo(f"added {n} record(s) to {target}")
    typer.echo(f"skipped {result.skipped_duplicates} duplicate(s)")


@data_app.command("stats")
def data_stats(
    table: Annotated[bool, typer.Option("--table", help="a side-by-side table of the splits instead of JSON")] = False,
) -> None:
    """Counts per split, label, flag, hard negatives, sentence length and opening variety, and how far each
    split's label spread and length distribution are from every other split's (JSON, or --table)."""
    from jdlens.validate import data_stats as stats
    from jdlens.validate import format_stats_table

    result = stats(repo_root())
    typer.echo(format_stats_table(result) if table else json.dumps(result, indent=2))


# ---------------------------------------------------------------- predict / score / eval


@app.command()
def predict(
    file: Annotated[str, typer.Argument(help="JSON Lines with a 'text' field, or - for stdin")],
    model: ModelOpt = "champion",
) -> None:
    """Classify sentences: one JSON line per input line (role, role_scores, flags, flag_scores)."""
    rows = _jsonl_rows(file, ("text",))
    predictor = _load(model)
    from jdlens.engine import Engine
    from jdlens.report import load_report_config

    for out in Engine(predictor, load_report_config()).classify([r["text"] for r in rows]):
        typer.echo(json.dumps(out, ensure_ascii=False))


@app.command()
def score(
    file: Annotated[str, typer.Argument(help="a JD as plain text (or JSON Lines with --jsonl), or - for stdin")],
    model: ModelOpt = "champion",
    jsonl: Annotated[bool, typer.Option("--jsonl", help="input is JSON Lines of JDs (id, text)")] = False,
) -> None:
    """Score a JD: role type, role shares, mistakes with evidence and fixes, salary band, interview plan."""
    from jdlens.engine import Engine
    from jdlens.report import load_report_config

    if jsonl:
        rows = _jsonl_rows(file, ("text",))
        engine = Engine(_load(model), load_report_config())
        for r in rows:
            typer.echo(json.dumps(engine.score(r["text"], jd_id=r.get("id")), ensure_ascii=False))
        return
    text = _read_input(file)
    if not text.strip():
        fail("the JD is empty")
    engine = Engine(_load(model), load_report_config())
    typer.echo(json.dumps(engine.score(text), ensure_ascii=False, indent=2))


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="the JD before the edit (plain text or markdown)")],
    new: Annotated[str, typer.Argument(help="the JD after the edit")],
    model: ModelOpt = "champion",
    report: Annotated[bool, typer.Option("--report", help="also print the new JD's full report")] = False,
) -> None:
    """Rescore an edited JD: score delta, mistakes fixed and introduced, sentences whose role changed."""
    from jdlens.engine import Engine
    from jdlens.report import load_report_config
    from jdlens.report_diff import diff_reports

    texts = [_read_input(old), _read_input(new)]
    for name, text in zip((old, new), texts, strict=True):
        if not text.strip():
            fail(f"{name}: the JD is empty")
    engine = Engine(_load(model), load_report_config())
    before, after = (engine.score(t) for t in texts)
    out: dict[str, Any] = {"diff": diff_reports(before, after)}
    if report:
        out["report"] = after
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


@app.command("eval")
def eval_cmd(
    model: ModelOpt = "champion",
    split: Annotated[
        str,
        typer.Option(help="test, dev, realistic (the held-out half of the real-posting-style JDs) or realistic_dev"),
    ] = "test",
    out: Annotated[Path | None, typer.Option(help="where to write the JSON (default .jdlens/eval/)")] = None,
) -> None:
    """Sentence-level and JD-level metrics, printed as a table and written as JSON."""
    from jdlens.datastore import DataStore
    from jdlens.evaluate import evaluate, format_table
    from jdlens.paths import state_dir
    from jdlens.report import load_report_config

    jd_split = {"test": "test", "dev": "dev", "realistic": "realistic_test", "realistic_dev": "realistic_dev"}.get(
        split
    )
    if jd_split is None:
        fail("--split must be test, dev, realistic or realistic_dev")
    store = DataStore(repo_root())
    jds = store.jds(jd_split)
    sentences = store.sentences("test") if split == "test" else []
    if not jds and not sentences:
        fail(f"no data for --split {split} (data/jds/{jd_split}.jsonl)")
    predictor = _load(model)
    result = evaluate(predictor, sentences, jds, load_report_config())
    result["split"] = split
    typer.echo(format_table(result))
    slug = model.replace(":", "-").replace("/", "_").replace("@", "-")
    out = out or state_dir() / "eval" / f"{slug}_{split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    typer.echo(f"\nwrote {out}")


# ---------------------------------------------------------------- training and the registry


def _train_args(config: Path | None, overrides: list[str] | None) -> Any:
    from jdlens.config import load_config
    from training.args import TrainingArguments

    path = config or repo_root() / "configs" / "default.yaml"
    if not path.exists():
        fail(f"config {path} not found")
    try:
        return load_config(TrainingArguments, path, overrides or [])
    except (ValueError, TypeError) as exc:
        fail(str(exc))


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="training config (default configs/default.yaml)")
]
OverridesArg = Annotated[list[str] | None, typer.Argument(help="key=value overrides of the config")]


@app.command()
def train(config: ConfigOpt = None, overrides: OverridesArg = None) -> None:
    """Fine-tune the encoder (LoRA by default), track the run in MLflow and register a new version."""
    from training.run import run_training

    args = _train_args(config, overrides)
    try:
        outcome = run_training(args, repo_root(), str(config or "configs/default.yaml"))
    except OSError as exc:  # e.g. a full disk while writing artifacts: the run is marked FAILED, nothing registered
        fail(f"training failed: {exc}; nothing was registered", 1)
    if outcome is None:
        return
    from jdlens.tracking import KEY_METRIC

    typer.echo(f"run {outcome.run_id}: {KEY_METRIC}={outcome.metrics.get(KEY_METRIC, float('nan')):.4f}")
    if outcome.version:
        typer.echo(f"registered jdlens version {outcome.version} as @{outcome.alias}")


# ---------------------------------------------------------------- serving


def _serve_cfg(config: Path | None, host: str | None, port: int | None) -> Any:
    from jdlens.config import load_config
    from serving.settings import ServeConfig

    path = config or repo_root() / "configs" / "serve.yaml"
    try:
        cfg = load_config(ServeConfig, path if path.exists() else None)
    except (ValueError, TypeError) as exc:
        fail(str(exc))
    if host:
        cfg.host = host
    if port:
        cfg.port = port
    return cfg


@app.command()
def serve(
    model: ModelOpt = "champion",
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8080)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="default configs/serve.yaml")] = None,
    backend: Annotated[str, typer.Option(help="local (PyTorch in-process) or vllm")] = "local",
    vllm_url: Annotated[str | None, typer.Option(help="base URL of a vLLM server running the exported model")] = None,
) -> None:
    """Serve the scoring API, the TorchServe-style inference API and the web page."""
    from serving.server import serve as run_server

    if backend not in ("local", "vllm"):
        fail("--backend must be local or vllm")
    if backend == "vllm" and not vllm_url:
        fail("--backend vllm needs --vllm-url (e.g. http://127.0.0.1:8000)")
    cfg = _serve_cfg(config, host, port)
    try:
        run_server(model, cfg, backend, vllm_url)
    except (ValueError, LookupError, FileNotFoundError, ConnectionError) as exc:
        fail(str(exc))


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8080)")] = None,
) -> None:
    """The main job: train the default model if no champion exists, then serve the champion."""
    from jdlens import tracking

    client = tracking.setup()
    if tracking.alias_version(client, tracking.CHAMPION) is None:
        typer.echo("jdlens: no champion model yet; training the default model (configs/default.yaml)")
        train(config=None, overrides=None)
    serve(model="champion", host=host, port=port, config=None, backend="local", vllm_url=None)


@feedback_app.command("export")
def feedback_export(out: Path) -> None:
    """Write the stored corrections as labelled sentence records (input for `jdlens retrain`)."""
    from jdlens.paths import state_dir
    from serving.feedback import FeedbackStore

    n = FeedbackStore(state_dir() / "feedback.sqlite").export(out)
    typer.echo(f"wrote {n} corrected sentence(s) to {out}")


@app.command()
def models() -> None:
    """List the registered versions of `jdlens` with their aliases and key test metrics."""
    from jdlens import tracking
    from training.registry import all_versions, format_models

    typer.echo(format_models(all_versions(tracking.setup())))


@app.command()
def compare(
    versions: Annotated[list[str] | None, typer.Argument(help="version numbers (default: all)")] = None,
) -> None:
    """Versions side by side: every metric, deltas against the champion, differing params, dataset hashes."""
    from jdlens import tracking
    from training.registry import all_versions, format_compare

    client = tracking.setup()
    infos = all_versions(client)
    if versions:
        wanted = {v.removeprefix("v") for v in versions}
        missing = wanted - {i.version for i in infos}
        if missing:
            fail(f"no such version(s): {', '.join(sorted(missing))}; see `jdlens models`")
        infos = [i for i in infos if i.version in wanted]
    if not infos:
        fail("no registered versions yet; train one with `jdlens train`")
    typer.echo(format_compare(infos, tracking.alias_version(client, tracking.CHAMPION)))


@app.command()
def promote(
    version: str,
    force: Annotated[bool, typer.Option("--force", help="promote even if worse on test role macro-F1")] = False,
) -> None:
    """Move the `champion` alias to VERSION (refuses a worse version unless --force)."""
    from jdlens import tracking
    from training.registry import promote as do_promote

    try:
        typer.echo(do_promote(tracking.setup(), version.removeprefix("v"), force))
    except (PermissionError, LookupError) as exc:
        fail(str(exc), 1)


@app.command()
def retrain(
    file: Path,
    promote_policy: Annotated[str, typer.Option("--promote", help="never | if-better | always")] = "if-better",
    config: ConfigOpt = None,
    overrides: OverridesArg = None,
    embeddings: Annotated[bool, typer.Option(help="check near duplicates of held-out data")] = True,
) -> None:
    """Add newly labelled records, retrain, evaluate on the unchanged test splits, gate promotion."""
    from training.retrain import retrain as do_retrain

    args = _train_args(config, overrides)
    try:
        outcome = do_retrain(
            file, args, repo_root(), promote_policy, str(config or "configs/default.yaml"), use_embeddings=embeddings
        )
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. a full disk while writing artifacts: the run is marked FAILED
        fail(f"retraining failed: {exc}; the data, the registry and the champion are unchanged", 1)
    for p in outcome.added.problems:
        typer.echo(str(p), err=True)
    if outcome.added.problems:
        fail(outcome.message, 1)
    for target, n in outcome.added.added.items():
        typer.echo(f"added {n} record(s) to {target}")
    typer.echo(outcome.message)


@app.command()
def export(
    out: Path,
    model: ModelOpt = "champion",
    format: Annotated[str, typer.Option("--format", help="hf: a plain Hugging Face folder")] = "hf",
) -> None:
    """Export a model as a plain Hugging Face *ForSequenceClassification folder (LoRA merged, safetensors)."""
    from training.export import export_hf

    if format != "hf":
        fail("only --format hf is supported")
    try:
        path = export_hf(_load(model, backend="torch"), out)  # re-saves the torch weights
    except ValueError as exc:
        fail(str(exc))
    typer.echo(
        f"exported to {path} (load with transformers.AutoModelForSequenceClassification; "
        f"serve with: vllm serve {path} --runner pooling --convert classify)"
    )


@app.command("tune-report")
def tune_report(
    model: ModelOpt = "champion",
    write: Annotated[bool, typer.Option("--write", help="save the best values into configs/report.yaml")] = False,
) -> None:
    """Tune the JD-level thresholds (mixed share, minimum sentences) on the dev JDs only (both dev halves:
    the original dev JDs and the realistic dev JDs; never a test split)."""
    import dataclasses
    import itertools

    from jdlens.datastore import DataStore
    from jdlens.evaluate import jd_metrics, predict_jd_sentences
    from jdlens.report import build_report, load_report_config

    store = DataStore(repo_root())
    jds = store.jds("dev") + store.jds("realistic_dev")
    if not jds:
        fail("no dev JDs in data/jds/dev.jsonl or data/jds/realistic_dev.jsonl")
    sents = predict_jd_sentences(_load(model), [j["text"] for j in jds])
    base = load_report_config()
    rows = []
    for share, min_n in itertools.product((0.15, 0.2, 0.25, 0.3, 0.35), (1, 2, 3)):
        cfg = dataclasses.replace(base, mixed_min_share=share, mixed_min_sentences=min_n)
        m = jd_metrics(jds, [build_report(s, cfg) for s in sents])
        f1 = sum(v["f1"] for v in m["mistakes"].values()) / len(m["mistakes"])
        rows.append((m["role_type_accuracy"], f1, share, min_n))
        typer.echo(
            f"mixed_min_share={share:<5} mixed_min_sentences={min_n}  dev role_type acc "
            f"{m['role_type_accuracy']:.3f}  mean mistake F1 {f1:.3f}"
        )
    # Best accuracy, then mistake F1, then the value nearest the guide's "about a quarter".
    best = max(rows, key=lambda r: (r[0], r[1], -abs(r[2] - 0.25), -abs(r[3] - 2)))
    typer.echo(
        f"best on dev: mixed_min_share={best[2]} mixed_min_sentences={best[3]} "
        f"(role_type acc {best[0]:.3f}, mean mistake F1 {best[1]:.3f})"
    )
    if write:
        path = repo_root() / "configs" / "report.yaml"
        # Rewrite only the two tuned values; every other line (the other checks' settings) stays as it is.
        lines = path.read_text(encoding="utf-8").splitlines()
        tuned = {"mixed_min_share": best[2], "mixed_min_sentences": best[3]}
        header_end = next((i for i, x in enumerate(lines) if not x.startswith("#")), len(lines))
        for key, value in tuned.items():
            at = next((i for i, x in enumerate(lines) if x.split(":", 1)[0] == key), None)
            if at is None:
                lines.insert(header_end, f"{key}: {value}")
            else:
                lines[at] = f"{key}: {value}"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        typer.echo(f"wrote {path}")


# Batch scoring and the market report live in jdlens/cli_scale.py.
from jdlens.cli_scale import batch, market  # noqa: E402

app.command()(batch)
app.command()(market)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
