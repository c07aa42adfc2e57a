"""The real-posting-style splits and what the recipe does with them: held-out checks, `eval --split
realistic`, split comparison in `data stats`, length-bucketed batches, and temperature scaling folded
into the head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jdlens.cli import app
from jdlens.datastore import DataStore
from jdlens.records import jd_gold_sentences
from tests.conftest import write_jsonl
from training.recipe import LengthBucketBatchSampler, fit_temperature, fold_temperature

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def test_realistic_splits_exist_with_both_halves_and_enough_data() -> None:
    store = DataStore(REPO)
    dev, test = store.jds("realistic_dev"), store.jds("realistic_test")
    assert len(dev) + len(test) >= 60
    assert len(jd_gold_sentences(dev)) + len(jd_gold_sentences(test)) >= 2000
    assert not {j["id"] for j in dev} & {j["id"] for j in test}
    for half in (dev, test):  # every role type in both halves
        assert {j["role_type"] for j in half} == {"application", "ml", "research", "mixed"}


def test_a_realistic_sentence_cannot_enter_train(project: Path) -> None:
    jd = json.loads((project / "data/jds/realistic_test.jsonl").read_text().splitlines()[0])
    held = next(s for s in jd["sentences"] if len(s["text"].split()) >= 8)
    before = (project / "data/sentences/train.jsonl").read_bytes()
    leak = {"text": held["text"], "role": held["role"], "flags": held["flags"]}
    result = DataStore(project).add(write_jsonl(project / "leak.jsonl", [leak]), "train", use_embeddings=False)
    assert result.problems and "held-out" in result.problems[0].reason
    assert (project / "data/sentences/train.jsonl").read_bytes() == before


def test_eval_split_realistic_reports_the_test_half(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "--model", "baseline:keywords", "--split", "realistic", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    n_test = len(DataStore(project).jds("realistic_test"))
    assert data["jds"]["n"] == n_test and "sentences" not in data
    assert "Whole JDs" in result.output
    bad = runner.invoke(app, ["eval", "--model", "baseline:keywords", "--split", "nope"])
    assert bad.exit_code != 0 and "--split" in bad.output


def test_data_stats_compares_every_split_with_the_others(project: Path) -> None:
    result = runner.invoke(app, ["data", "stats"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    comp = stats["comparison"]
    assert "jds/realistic_test" in comp and "sentences/train" in comp["jds/realistic_test"]
    pair = comp["sentences/train"]["jds/realistic_test"]
    assert 0 <= pair["role_tv"] <= 1 and 0 <= pair["length_tv"] <= 1
    assert pair["role_tv"] == comp["jds/realistic_test"]["sentences/train"]["role_tv"]  # symmetric
    lengths = stats["jds/realistic_test"]["gold_sentences"]["length_buckets"]
    assert abs(sum(lengths.values()) - 1) < 1e-3
    table = runner.invoke(app, ["data", "stats", "--table"])
    assert (
        table.exit_code == 0
        and "jds/realistic_test" in table.output
        and "jd:real_test" in table.output
        and "med w" in table.output
    )


def test_length_buckets_cover_every_example_once_with_less_padding() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 90, size=1000).tolist()
    sampler = LengthBucketBatchSampler(lengths, batch_size=32, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    random_batches = [list(range(k, min(k + 32, 1000))) for k in range(0, 1000, 32)]
    padded_random = sum(max(lengths[i] for i in b) * len(b) for b in random_batches)
    assert padded < 0.8 * padded_random
    assert [b for b in LengthBucketBatchSampler(lengths, 32, seed=1)] == batches  # same seed, same order
    assert list(sampler) != batches  # the next epoch is shuffled differently


def test_fit_temperature_recovers_an_overconfident_scale() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 5)) * 2
    probs = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=p) for p in probs])
    assert abs(fit_temperature(true_logits * 3, y, binary=False) - 3) <= 0.3
    assert abs(fit_temperature(true_logits, y, binary=False) - 1) <= 0.15
    flag_logits = rng.normal(size=(4000, 3)) * 2
    flags = (rng.random((4000, 3)) < 1 / (1 + np.exp(-flag_logits))).astype(float)
    assert abs(fit_temperature(flag_logits * 2, flags, binary=True) - 2) <= 0.25


@pytest.mark.parametrize("peft", [False, True])
def test_folded_temperature_divides_role_and_flag_logits(tiny_encoder: Path, peft: bool) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=8).eval()
    if peft:
        from peft import LoraConfig, TaskType, get_peft_model

        cfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=["query"], modules_to_save=["classifier"])
        model = get_peft_model(model, cfg).eval()
    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    batch = tok(["Fine-tune Llama with LoRA.", "We offer great benefits."], return_tensors="pt", padding=True)
    with torch.no_grad():
        before = model(**batch).logits
        fold_temperature(model, 2.0, 4.0)
        after = model(**batch).logits
    torch.testing.assert_close(after[:, :5], before[:, :5] / 2.0)
    torch.testing.assert_close(after[:, 5:], before[:, 5:] / 4.0)


def test_eval_reports_calibration_of_the_role_scores() -> None:
    from jdlens.evaluate import calibration

    gold = ["ml", "ml", "general", "other"]
    confident_wrong = [
        {"role": "ml", "role_scores": {"ml": 0.9, "general": 0.1}},
        {"role": "general", "role_scores": {"general": 0.95, "ml": 0.05}},
        {"role": "general", "role_scores": {"general": 0.9, "ml": 0.1}},
        {"role": "ml", "role_scores": {"ml": 0.99, "other": 0.01}},
    ]
    cal = calibration(gold, confident_wrong)
    assert cal["median_confidence_wrong"] == pytest.approx(0.97)
    assert cal["role_ece"] > 0.4  # 93% confident, 50% right
    honest = [{**p, "role_scores": {p["role"]: 0.5, "x": 0.5}} for p in confident_wrong]
    assert calibration(gold, honest)["role_ece"] == pytest.approx(0.0)
