"""A first run prints no library noise: no MLflow dataset-source warnings, no transformers load report
calling the new head MISSING, no FutureWarning from building the LoRA model."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from training.args import TrainingArguments


def test_building_the_model_is_quiet(tiny_encoder: Path, capfd: pytest.CaptureFixture[str], caplog) -> None:  # noqa: ANN001
    from training.recipe import build_model

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        model, _ = build_model(TrainingArguments(base_model=str(tiny_encoder)))
    out, err = capfd.readouterr()
    noise = out + err + caplog.text
    assert "MISSING" not in noise and "LOAD REPORT" not in noise, noise
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    # The encoder really is the pretrained one (not a fresh initialisation).
    from transformers import AutoModel

    ref = AutoModel.from_pretrained(tiny_encoder).state_dict()
    got = {k.replace(".base_layer", ""): v for k, v in model.base_model.model.bert.state_dict().items()}
    ref = {k: v for k, v in ref.items() if not k.startswith("pooler.")}  # the pooler is wrapped (trained in full)
    assert set(ref) <= set(got) and all(bool((got[k] == ref[k]).all()) for k in ref)


def test_dataset_inputs_name_their_source(project: Path) -> None:
    import mlflow

    from jdlens import tracking
    from jdlens.datastore import DataStore
    from training.run import _log_datasets

    tracking.setup()
    with warnings.catch_warnings(record=True) as caught, mlflow.start_run() as run:
        warnings.simplefilter("always")
        _log_datasets(DataStore(project), [{"text": "Ship a RAG bot.", "role": "application", "flags": []}])
    assert not [w for w in caught if "interpreted in multiple ways" in str(w.message)]
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    local = [d.dataset for d in inputs if d.dataset.source_type == "local"]
    assert {d.name for d in local} >= {"sentences/train.jsonl", "jds/dev.jsonl"}
    assert all(d.source.startswith('{"uri": "file://') for d in local)


def test_saving_the_pyfunc_is_quiet_and_keeps_its_example(tiny_model_dir: Path, tmp_path: Path) -> None:
    """MLflow warns on every save without an input example; jdlens saves one that matches the signature."""
    from mlflow.models import Model

    from jdlens.pyfunc import save_pyfunc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dest = save_pyfunc(tiny_model_dir, tmp_path / "pyfunc")
    assert not [w for w in caught if "input example" in str(w.message).lower()], [str(w.message) for w in caught]
    example = Model.load(str(dest)).load_input_example(str(dest))
    assert list(example.columns) == ["text", "id"] and example["text"].str.len().iloc[0] > 20
