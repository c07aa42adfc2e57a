"""The training speed-ups keep the recipe correct: bf16 autocast where the CPU multiplies bf16 natively
(and fp32 elsewhere), the AdamW implementations agree, and skipped early evaluations still leave a best
state. Tiny encoder, a few steps each; no timings here (those live in `python -m training.benchmark`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from jdlens import hardware
from training import recipe
from training.args import TrainingArguments

ROWS = [
    {"text": "Build retrieval-augmented chat features on top of hosted LLM APIs.", "role": "application", "flags": []},
    {"text": "Fine-tune and serve our ranking models in production.", "role": "ml", "flags": []},
    {"text": "Publish novel architectures at top venues.", "role": "research", "flags": []},
    {"text": "You will collaborate with product and design.", "role": "general", "flags": []},
    {"text": "We offer a generous parental leave policy.", "role": "other", "flags": []},
    {"text": "A PhD is required for this role.", "role": "general", "flags": ["phd_required"]},
] * 4


def tiny_args(encoder: Path, **overrides: object) -> TrainingArguments:
    args = TrainingArguments(
        base_model=str(encoder), epochs=1, batch_size=8, max_length=32, lora_r=4, lora_alpha=8, learning_rate=5e-3
    )
    return dataclasses.replace(args, register=False, calibrate=False, tune_flag_thresholds=False, **overrides)


def test_auto_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda native=native: native)
        assert recipe.use_bf16(TrainingArguments(precision="auto"), cpu) is native
        assert recipe.use_bf16(TrainingArguments(precision="fp32"), cpu) is False
        assert recipe.use_bf16(TrainingArguments(precision="bf16"), cpu) is True


def test_cpu_bf16_probe_answers_a_bool() -> None:
    assert isinstance(hardware.cpu_has_fast_bf16(), bool)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_both_precisions_train(tiny_encoder: Path, precision: str) -> None:
    """Each path runs a real step: the encoder's matmuls see bf16 only under bf16, the weights and the
    loss stay fp32, and the trained parameters move."""
    args = tiny_args(tiny_encoder, precision=precision)
    model, tok = recipe.build_model(args)
    model.train()
    loader = recipe.make_loader(recipe.encode(tok, ROWS, args.max_length), tok, args, recipe.DistInfo())
    role_w, flag_pw = recipe.loss_weights(ROWS, args)
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    seen: list[torch.dtype] = []
    query = next(m for n, m in model.named_modules() if n.endswith("attention.self.query.base_layer"))
    query.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    optim = recipe.make_optimizer(params, args)
    loss = recipe.train_step(model, next(iter(loader)), optim, params, role_w, flag_pw, args, precision == "bf16")
    assert seen == [torch.bfloat16 if precision == "bf16" else torch.float32]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(p.dtype == torch.float32 for p in params)
    assert any(not torch.equal(a, b) for a, b in zip(before, params, strict=True))


def test_adamw_implementations_agree(tiny_encoder: Path) -> None:
    """fused, foreach and the per-tensor loop are one algorithm: the same step from the same start."""
    results = []
    for impl in ("loop", "foreach", "fused"):
        args = tiny_args(tiny_encoder, precision="fp32", optimizer_impl=impl, lora_dropout=0.0)
        torch.manual_seed(0)
        model, tok = recipe.build_model(args)
        loader = recipe.make_loader(recipe.encode(tok, ROWS, args.max_length), tok, args, recipe.DistInfo())
        role_w, flag_pw = recipe.loss_weights(ROWS, args)
        params = [p for p in model.parameters() if p.requires_grad]
        recipe.train_step(
            model, next(iter(loader)), recipe.make_optimizer(params, args), params, role_w, flag_pw, args, False
        )
        results.append(torch.cat([p.detach().flatten() for p in params]))
    assert torch.allclose(results[0], results[1], atol=1e-6) and torch.allclose(results[0], results[2], atol=1e-6)


def test_skipped_early_evaluations_still_pick_a_best_epoch(tiny_encoder: Path) -> None:
    args = tiny_args(tiny_encoder, epochs=3, eval_from_epoch=3, lr_schedule="cosine", patience=1)
    result = recipe.train(args, ROWS, ROWS[:6], dist_info=recipe.DistInfo())
    assert [("dev_score" in h) for h in result.history] == [False, False, True]
    assert result.best_epoch == 3 and result.classifier is not None


def test_bad_speed_options_are_refused() -> None:
    for bad in ({"optimizer_impl": "sgd"}, {"lr_schedule": "step"}, {"precision": "fp16"}):
        with pytest.raises(ValueError):
            dataclasses.replace(TrainingArguments(), **bad).validate()
