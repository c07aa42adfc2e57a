"""A tracked training run: train, evaluate, log everything to MLflow, register a new `jdlens` version.

Every run logs the resolved config as params, each data split's content hash as an MLflow dataset
input, per-epoch loss and dev metrics, the final test metrics, a confusion matrix, a model card, and
the model (LoRA adapter and merged weights, safetensors only) and the same model as an MLflow pyfunc
(`jdlens/pyfunc.py`), which is the registered version's source. The first registered version becomes
`champion`; later ones become `challenger` and are promoted only by `jdlens promote` or `retrain`.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jdlens import tracking
from jdlens.datastore import DataStore
from jdlens.evaluate import evaluate, flat_metrics
from jdlens.labels import ROLES
from jdlens.records import jd_gold_sentences
from jdlens.report import load_report_config
from training.args import TrainingArguments
from training.recipe import init_distributed, merge_for_export, train


@dataclass
class RunOutcome:
    run_id: str
    version: str | None
    alias: str | None
    metrics: dict[str, float]
    model_dir: str


def confusion_png(matrix: list[list[int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(ROLES)), ROLES, rotation=30)
    ax.set_yticks(range(len(ROLES)), ROLES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _local_source(path: Path) -> Any:
    """An explicit local-file dataset source. Given a bare path, MLflow matches it against both of its
    local-file source types (schemes "" and "file") and warns that the source "can be interpreted in
    multiple ways" once per split; naming the source type leaves nothing to guess."""
    from mlflow.data.dataset_source_registry import get_registered_sources

    local = next(s for s in get_registered_sources() if s._get_source_type() == "local")
    return local(path.resolve().as_uri())


def _log_datasets(store: DataStore, extra: list[dict[str, Any]]) -> dict[str, str]:
    import mlflow
    import pandas as pd

    hashes = store.hashes()
    contexts = {
        "sentences/train.jsonl": "training",
        "jds/train.jsonl": "training",
        "jds/dev.jsonl": "validation",
        "jds/realistic_dev.jsonl": "validation",
        "sentences/test.jsonl": "testing",
        "jds/test.jsonl": "testing",
        "jds/realistic_test.jsonl": "testing",
    }
    for rel, digest in hashes.items():
        path = store.data / rel
        records = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        df = pd.DataFrame(
            {"text": [r["text"][:200] for r in records], "label": [r.get("role", r.get("role_type")) for r in records]}
        )
        ds = mlflow.data.from_pandas(df, source=_local_source(path), name=rel, digest=digest)
        mlflow.log_input(ds, context=contexts.get(rel, "other"))
    if extra:
        import hashlib

        digest = hashlib.sha256(json.dumps(extra, sort_keys=True).encode()).hexdigest()[:16]
        hashes["pending_new_records"] = digest
        df = pd.DataFrame({"text": [r["text"][:200] for r in extra], "label": [r["role"] for r in extra]})
        mlflow.log_input(mlflow.data.from_pandas(df, name="new_records", digest=digest), context="training")
    return hashes


def register(client: Any, run_id: str, artifact_uri: str, metrics: dict[str, float]) -> tuple[str, str]:
    """New version of `jdlens`: champion if there is none yet, otherwise challenger."""
    try:
        client.get_registered_model(tracking.REGISTERED_MODEL)
    except Exception:  # noqa: BLE001 - first run creates it
        try:
            client.create_registered_model(tracking.REGISTERED_MODEL, description="jdlens sentence classifier")
        except Exception:  # noqa: BLE001 - a concurrent run created it first (shared tracking server)
            client.get_registered_model(tracking.REGISTERED_MODEL)
    mv = client.create_model_version(
        tracking.REGISTERED_MODEL,
        # The pyfunc (which wraps the `model` folder) is the source: `models:/jdlens@champion` loads with
        # mlflow.pyfunc.load_model; jdlens itself downloads the plain `model` folder by run id.
        source=f"{artifact_uri}/pyfunc",
        run_id=run_id,
        tags={k: str(v) for k, v in metrics.items() if k in (tracking.KEY_METRIC, "test_jd_role_type_accuracy")},
    )
    alias = tracking.CHALLENGER if tracking.alias_version(client, tracking.CHAMPION) else tracking.CHAMPION
    client.set_registered_model_alias(tracking.REGISTERED_MODEL, alias, mv.version)
    return str(mv.version), alias


def run_training(
    args: TrainingArguments,
    root: Path,
    config_path: str | None = None,
    extra_train: list[dict[str, Any]] | None = None,
    before_register: Any = None,
) -> RunOutcome | None:
    """Train with tracking. Returns None on non-main DDP ranks. `before_register` runs after the model is
    evaluated and logged but before it is registered (retrain commits its new data there)."""
    import mlflow

    dist_info = init_distributed()
    store = DataStore(root)
    extra = list(extra_train or [])
    train_records = store.train_records() + extra
    select_split = args.select_split if store.jds(args.select_split) else "dev"
    dev_records = jd_gold_sentences(store.jds(select_split))
    if not dist_info.is_main:
        train(args, train_records, dev_records, dist_info=dist_info)
        return None

    client = tracking.setup()
    with mlflow.start_run(run_name=args.run_name or None) as run, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        mlflow.log_params(
            {
                **args.to_params(),
                "config_file": config_path or "(defaults)",
                "n_train": len(train_records),
                "n_dev": len(dev_records),
                "selected_on": select_split,
                "world_size": dist_info.world_size,
            }
        )
        hashes = _log_datasets(store, extra)
        report_cfg = load_report_config(root / "configs" / "report.yaml")
        mlflow.log_params(
            {
                "report_mixed_min_share": report_cfg.mixed_min_share,
                "report_mixed_min_sentences": report_cfg.mixed_min_sentences,
            }
        )
        step = {"n": 0}

        def on_epoch(rec: dict[str, float]) -> None:
            step["n"] += 1
            mlflow.log_metrics({k: v for k, v in rec.items() if k != "epoch"}, step=step["n"])

        result = train(args, train_records, dev_records, on_epoch=on_epoch, dist_info=dist_info)
        clf = result.classifier
        device = str(next(clf.model.parameters()).device)
        if hasattr(clf.model, "peft_config"):
            clf.model.save_pretrained(out / "adapter", safe_serialization=True)
        merged = merge_for_export(clf)
        merged.meta.update(
            {
                "name": tracking.REGISTERED_MODEL,
                "base_model": args.base_model,
                "method": args.method,
                "max_length": args.max_length,
                "data_hashes": hashes,
                "mlflow_run_id": run.info.run_id,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        merged.model.to("cpu")
        merged.save(out / "model")

        metrics = {
            "train_seconds": result.train_seconds,
            "examples_per_second": result.examples_per_second,
            "best_epoch": result.best_epoch,
            "best_dev_score": result.best_dev_score,
            "trainable_params": result.trainable_params,
            "role_temperature": result.role_temperature,
            "flag_temperature": result.flag_temperature,
            "select_role_ece_before_calibration": result.dev_ece_before,
            "select_role_ece_after_calibration": result.dev_ece_after,
        }
        metrics = {k: v for k, v in metrics.items() if v == v}  # MLflow rejects NaN: drop what was not measured
        results: dict[str, Any] = {}
        splits = [("dev", [], store.jds("dev")), ("realistic_dev", [], store.jds("realistic_dev"))]
        if args.evaluate_test:
            splits += [("test", store.sentences("test"), store.jds("test"))]
            splits += [("realistic_test", [], store.jds("realistic_test"))]
        print(f"evaluating on {', '.join(n for n, s, j in splits if s or j)}", flush=True)
        for name, sents, jds in splits:
            if not sents and not jds:
                continue
            results[name] = evaluate(merged, sents, jds, report_cfg)
            metrics.update(flat_metrics(results[name], name))
        mlflow.log_metrics(metrics)
        (out / "eval.json").write_text(json.dumps(results, indent=2))
        mlflow.log_artifact(str(out / "eval.json"))
        main_result = results.get("test", results["dev"])
        matrix = (main_result.get("sentences") or main_result["jd_sentences"])["confusion"]
        confusion_png(matrix, out / "confusion_matrix.png", "roles on the test sentences")
        mlflow.log_artifact(str(out / "confusion_matrix.png"))
        from training.model_card import render

        info = {
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "examples_per_second": result.examples_per_second,
            "device": device,
            "trainable_params": result.trainable_params,
            "total_params": result.total_params,
            "flag_thresholds": merged.flag_thresholds,
            "selected_on": select_split,
            "role_temperature": result.role_temperature,
            "flag_temperature": result.flag_temperature,
        }
        card = render(args.to_params(), hashes, main_result, info)
        (out / "model" / "README.md").write_text(card)
        (out / "model_card.md").write_text(card)
        mlflow.log_artifact(str(out / "model_card.md"))
        from jdlens.pyfunc import save_pyfunc

        save_pyfunc(out / "model", out / "pyfunc", root / "configs" / "report.yaml")  # torch: no ONNX graphs
        mlflow.log_artifacts(str(out / "pyfunc"), "pyfunc")
        if args.onnx_backends:
            from jdlens.backends import measure_backends, reference_from_evaluation

            print("exporting ONNX graphs (fp32, int8) and measuring each inference backend on every split", flush=True)
            # torch fp32's role macro-F1 on each split was measured just above, on the same weights and sets
            reference = reference_from_evaluation(results)
            backends = measure_backends(out / "model", root, reference_f1=reference)  # graphs + backends.json
            mlflow.log_metrics(
                {
                    f"backend_{n.replace('-', '_')}_drop_points": e["drop_points"]
                    for n, e in backends["backends"].items()
                }
            )
        mlflow.log_artifacts(str(out / "model"), "model")
        if (out / "adapter").exists():
            mlflow.log_artifacts(str(out / "adapter"), "adapter")
        if before_register:
            before_register(metrics)
        version = alias = None
        if args.register:
            version, alias = register(client, run.info.run_id, run.info.artifact_uri, metrics)
            mlflow.set_tag("registered_version", version)
        return RunOutcome(run.info.run_id, version, alias, metrics, f"{run.info.artifact_uri}/model")
