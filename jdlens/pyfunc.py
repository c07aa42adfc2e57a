"""The jdlens model as an MLflow pyfunc: a DataFrame of JDs (`text`, optional `id`) -> one row of report
columns per JD, from the same `Engine` and row code as `jdlens score` and `jdlens batch`.

Every training run saves one next to the plain model folder and registers it as the version's source, so
`mlflow.pyfunc.load_model("models:/jdlens@champion")`, `mlflow models serve -m models:/jdlens@champion` and
`mlflow.pyfunc.spark_udf(spark, "models:/jdlens@champion", result_type=...)` work with no jdlens glue.

The model is saved as "models from code" (`jdlens/pyfunc_model.py`), not pickled: loading it never
unpickles anything; the weights are safetensors and the jdlens code travels in the model's `code/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jdlens.batch import JD_COLUMNS, jd_row

REPORT_JSON = "report_json"


def output_columns() -> list[tuple[str, str]]:
    """(name, MLflow type) of each output column: the `OUT/jds` columns plus the full report as JSON."""
    types = {"role_type": "string", "model_name": "string", "model_version": "string", "id": "string"}
    out = []
    for c in JD_COLUMNS:
        if c in types:
            out.append((c, types[c]))
        elif c.startswith("share_"):
            out.append((c, "double"))
        elif c in ("score", "n_sentences"):
            out.append((c, "long"))
        else:
            out.append((c, "boolean"))
    return [*out, (REPORT_JSON, "string")]


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("string", "text"), ColSpec("string", "id", required=False)])
    outputs = Schema([ColSpec(t, n) for n, t in output_columns()])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example() -> Any:
    """A one-JD request frame saved with the model: MLflow checks it against the signature and shows it to
    users of the registered model (and, without one, warns on every save)."""
    import pandas as pd

    text = "We are hiring an ML engineer to fine-tune, serve and monitor our ranking models. Python required."
    return pd.DataFrame({"text": [text], "id": ["example"]})


def predict_frame(engine: Any, frame: Any) -> Any:
    """The pyfunc's predict: a DataFrame with `text` (and `id`) -> the report columns, one row per input row."""
    import json

    import pandas as pd

    if "text" not in frame.columns:
        raise ValueError("the input needs a `text` column")
    texts = [str(t) if t is not None else "" for t in frame["text"].tolist()]
    ids = [str(x) for x in frame["id"].tolist()] if "id" in frame.columns else [str(i) for i in range(len(texts))]
    rows = []
    for report in engine.score_many(texts, ids):
        rows.append({**jd_row(report), REPORT_JSON: json.dumps(report, ensure_ascii=False)})
    return pd.DataFrame(rows, columns=[n for n, _ in output_columns()])


def save_pyfunc(model_dir: Path, dest: Path, report_config: Path | None = None) -> Path:
    """Save the model folder `model_dir` as an MLflow pyfunc at `dest` (a new folder)."""
    import mlflow

    from jdlens.report import load_report_config  # noqa: F401 - fail here, not at load time, on a bad config

    package = Path(__file__).resolve().parent
    artifacts = {"model": str(model_dir)}
    if report_config is not None and report_config.exists():
        artifacts["report_config"] = str(report_config)
    mlflow.pyfunc.save_model(
        path=str(dest),
        python_model=str(package / "pyfunc_model.py"),
        artifacts=artifacts,
        code_paths=[str(package)],
        signature=signature(),
        input_example=input_example(),
        pip_requirements=_requirements(),
    )
    return dest


def _requirements() -> list[str]:
    """What the pyfunc needs to run where jdlens is not installed (`mlflow models serve`, Spark executors)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("mlflow", "torch", "transformers", "sentencex", "pyyaml", "pandas", "numpy", "safetensors"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


class JDLensPyfunc:
    """The PythonModel: loads the model folder and the report config once, scores DataFrames of JDs."""

    def load_context(self, context: Any) -> None:
        from jdlens.engine import Engine
        from jdlens.model import JDLensClassifier
        from jdlens.report import load_report_config

        model = JDLensClassifier.load(context.artifacts["model"])
        meta = model.meta
        model.name = meta.get("name", "jdlens")
        model.version = meta.get("version")
        cfg_path = context.artifacts.get("report_config")
        self.engine = Engine(model, load_report_config(Path(cfg_path) if cfg_path else None))

    # No type hints on predict: MLflow would derive a signature from them; the explicit one is richer.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        return predict_frame(self.engine, model_input)
