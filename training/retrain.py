"""`jdlens retrain NEW.jsonl`: add newly labelled data, train, evaluate on the unchanged test splits,
and promote the new version only if it beats the champion (or as --promote says).

Nothing is half-done: the new records are appended only after the model has trained and been
evaluated, a failed run is marked FAILED in MLflow, and the registry is touched last.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jdlens import tracking
from jdlens.datastore import AddResult, DataStore
from jdlens.records import jd_gold_sentences
from training.args import TrainingArguments
from training.registry import promote
from training.run import RunOutcome, run_training

POLICIES = ("never", "if-better", "always")


@dataclass
class RetrainOutcome:
    added: AddResult
    run: RunOutcome | None
    promoted: bool
    message: str


def retrain(
    file: Path,
    args: TrainingArguments,
    root: Path,
    policy: str = "if-better",
    config_path: str | None = None,
    use_embeddings: bool = True,
) -> RetrainOutcome:
    if policy not in POLICIES:
        raise ValueError(f"--promote must be one of {', '.join(POLICIES)}")
    store = DataStore(root)
    plan = store.plan_add(file, "train", use_embeddings=use_embeddings)
    if plan.problems:
        return RetrainOutcome(plan, None, False, "the new data has problems; nothing was changed")
    new = plan.new_records
    if not new:
        return RetrainOutcome(plan, None, False, "no new records (all duplicates); nothing to retrain on")
    extra: list[dict[str, Any]] = [r for r in new if "role_type" not in r] + jd_gold_sentences(
        [r for r in new if "role_type" in r]
    )
    outcome = run_training(
        args, root, config_path, extra_train=extra, before_register=lambda _metrics: store.commit(plan)
    )
    if outcome is None:  # a non-main DDP rank
        return RetrainOutcome(plan, None, False, "")
    client = tracking.setup()
    champion = tracking.alias_version(client, tracking.CHAMPION)
    new_score = outcome.metrics.get(tracking.KEY_METRIC, float("nan"))
    old_score = None
    if champion and champion != outcome.version:
        old_score = tracking.run_metrics(
            client, client.get_model_version(tracking.REGISTERED_MODEL, champion).run_id
        ).get(tracking.KEY_METRIC)
    summary = f"new version {outcome.version}: {tracking.KEY_METRIC}={new_score:.4f}" + (
        f" vs champion version {champion} {old_score:.4f}" if old_score is not None else ""
    )
    if outcome.version is None or champion == outcome.version:
        return RetrainOutcome(plan, outcome, champion == outcome.version, summary)
    better = old_score is None or new_score > old_score
    if policy == "always" or (policy == "if-better" and better):
        return RetrainOutcome(plan, outcome, True, summary + "; " + promote(client, outcome.version, force=True))
    reason = "policy never" if policy == "never" else "not better than the champion"
    return RetrainOutcome(plan, outcome, False, summary + f"; kept as challenger ({reason})")
