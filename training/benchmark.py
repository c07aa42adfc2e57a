"""Training throughput: what each speed-up of the default recipe buys, measured in one run.

    python -m training.benchmark [--steps 30] [--repeats 3] [--compile] [--full] [--out TRAIN_BENCH.json]

Variants, each adding one change to the one before it (the default config otherwise):
  before     the first recipe: random batches (padded to their longest example), fp32, per-tensor AdamW
  buckets    + length-bucketed batches (batches of similar token counts: less padding)
  bf16       + bf16 autocast of the forward pass (native on CPUs with AVX512_BF16 or AMX)
  fused      + fused AdamW (the default recipe now)
  compile    + torch.compile(dynamic=True) (with --compile; its compile time is reported apart)
  full       full fine-tuning with the default's speed-ups (with --full), for the LoRA/full ratio

Every variant trains `--steps` optimizer steps after 3 warm-up steps on the grown train split, from the
same seed; variants are interleaved repeat by repeat so that drift on a shared machine hits them alike,
and the figure is the median examples/s. Ratios are against `before` in the same run. The projected
epoch time is the train split's size over that rate (the wall time of a whole run, with its per-epoch
evaluation, is measured by `time jdlens train`; see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from jdlens.config import load_config, repo_root
from jdlens.datastore import DataStore
from jdlens.paths import offline_by_default
from training.args import TrainingArguments
from training.recipe import (
    DistInfo,
    build_model,
    encode,
    loss_weights,
    make_loader,
    make_optimizer,
    train_step,
    use_bf16,
)

# name -> (what changes, overrides of the default config)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "before": (
        "random batches, fp32, per-tensor AdamW",
        {"length_bucketing": False, "precision": "fp32", "optimizer_impl": "loop"},
    ),
    "buckets": ("+ length-bucketed batches", {"precision": "fp32", "optimizer_impl": "loop"}),
    "bf16": ("+ bf16 autocast", {"precision": "bf16", "optimizer_impl": "loop"}),
    "fused": ("+ fused AdamW (default)", {"precision": "bf16", "optimizer_impl": "fused"}),
    "compile": ("+ torch.compile", {"precision": "bf16", "optimizer_impl": "fused", "compile": True}),
    "full": ("full fine-tune, same speed-ups", {"method": "full", "precision": "bf16", "optimizer_impl": "fused"}),
}


def measure(args: TrainingArguments, records: list[dict[str, Any]], steps: int, warmup: int = 3) -> dict[str, float]:
    """Examples/s over `steps` optimizer steps after `warmup` (compile time, if any, is in the warm-up)."""
    torch.manual_seed(args.seed)
    model, tok = build_model(args)
    model.train()
    loader = make_loader(encode(tok, records, args.max_length), tok, args, DistInfo())
    role_w, flag_pw = loss_weights(records, args)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = make_optimizer(params, args)
    bf16 = use_bf16(args, torch.device("cpu"))
    forward = torch.compile(model, dynamic=True) if args.compile else model
    seen, tokens, t_start, start = 0, 0, time.perf_counter(), 0.0
    warmup_seconds = 0.0
    for i, batch in enumerate(loader):
        if i == warmup:
            start = time.perf_counter()
            warmup_seconds = start - t_start
            seen = tokens = 0
        if i >= warmup + steps:
            break
        seen += len(batch["role"])
        tokens += int(batch["input_ids"].numel())
        train_step(forward, batch, optim, params, role_w, flag_pw, args, bf16)
    seconds = time.perf_counter() - start
    return {
        "examples_per_second": seen / seconds,
        "padded_tokens_per_example": tokens / max(seen, 1),
        "warmup_seconds": warmup_seconds,
    }


def run(steps: int, repeats: int, names: list[str], config: Path) -> dict[str, Any]:
    offline_by_default()
    root = repo_root()
    records = DataStore(root).train_records()
    base = load_config(TrainingArguments, config)
    raw: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(repeats):
        for name in names:  # interleaved
            args = dataclasses.replace(base, **VARIANTS[name][1])
            raw[name].append(measure(args, records, steps))
    before = statistics.median(r["examples_per_second"] for r in raw["before"])
    variants = {}
    for name in names:
        rate = statistics.median(r["examples_per_second"] for r in raw[name])
        variants[name] = {
            "what": VARIANTS[name][0],
            "examples_per_second": round(rate, 1),
            "vs_before": round(rate / before, 3),
            "padded_tokens_per_example": round(statistics.median(r["padded_tokens_per_example"] for r in raw[name]), 1),
            "warmup_seconds": round(statistics.median(r["warmup_seconds"] for r in raw[name]), 1),
            "projected_epoch_seconds": round(len(records) / rate, 1),
        }
    from jdlens.hardware import cpu_has_fast_bf16

    return {
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": cpu_has_fast_bf16(),
        },
        "config": str(config),
        "train_examples": len(records),
        "steps": steps,
        "repeats": repeats,
        "variants": variants,
        "raw": raw,
    }


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"| variant | examples/s (median of {r['repeats']}) | vs before | padded tokens/example | projected epoch |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in r["variants"].items():
        extra = f" (warm-up incl. compile {v['warmup_seconds']:.0f} s)" if name == "compile" else ""
        lines.append(
            f"| {name}: {v['what']}{extra} | {v['examples_per_second']:.1f} | {v['vs_before']:.2f}x | "
            f"{v['padded_tokens_per_example']:.1f} | {v['projected_epoch_seconds'] / 60:.1f} min |"
        )
    m = r["machine"]
    lines.append(
        f"\n{r['train_examples']:,} training examples; torch {m['torch']}, {m['torch_threads']} threads, "
        f"CPU capability {m['cpu_capability']}, native bf16: {m['native_bf16']}."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to warm up)")
    parser.add_argument("--full", action="store_true", help="also measure full fine-tuning")
    parser.add_argument("--config", type=Path, default=None, help="the config the variants modify (default.yaml)")
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args(argv)
    names = ["before", "buckets", "bf16", "fused"] + ["compile"] * opts.compile + ["full"] * opts.full
    result = run(opts.steps, opts.repeats, names, opts.config or repo_root() / "configs" / "default.yaml")
    print(format_table(result))
    if opts.out:
        opts.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
