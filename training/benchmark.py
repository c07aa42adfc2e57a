"""Training throughput: LoRA (the default config) against full fine-tuning, measured in the same run.

    python -m training.benchmark [--steps 40] [--repeats 3]

Both methods train the same batches (same seed, same data order, dynamic padding) for a fixed number
of optimizer steps after a warm-up; the figure is examples/second, median of the repeats, and the
ratio LoRA/full. The default config's wall time is measured by `time jdlens train` (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from jdlens.config import load_config, repo_root
from jdlens.datastore import DataStore
from jdlens.paths import offline_by_default
from training.args import TrainingArguments
from training.recipe import DistInfo, build_model, compute_loss, encode, loss_weights, make_loader


def examples_per_second(args: TrainingArguments, records: list[dict], steps: int, warmup: int = 3) -> float:
    torch.manual_seed(args.seed)
    model, tok = build_model(args)
    model.train()
    loader = make_loader(encode(tok, records, args.max_length), tok, args, DistInfo())
    role_w, flag_pw = loss_weights(records, args)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=args.learning_rate)
    seen, start = 0, None
    for i, batch in enumerate(loader):
        if i == warmup:
            start, seen = time.perf_counter(), 0
        if i >= warmup + steps:
            break
        role, flags = batch.pop("role"), batch.pop("flags")
        loss = compute_loss(model(**batch).logits, role, flags, role_w, flag_pw)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        seen += len(role)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lora-config", default="configs/default.yaml")
    parser.add_argument("--full-config", default="configs/full_finetune.yaml")
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args()
    offline_by_default()
    root = repo_root()
    records = DataStore(root).train_records()
    results: dict[str, list[float]] = {"lora": [], "full": []}
    configs = {"lora": opts.lora_config, "full": opts.full_config}
    for _ in range(opts.repeats):
        for name, cfg in configs.items():  # interleaved so drift hits both alike
            args = load_config(TrainingArguments, root / cfg)
            results[name].append(examples_per_second(args, records, opts.steps))
    lora, full = statistics.median(results["lora"]), statistics.median(results["full"])
    trainable = {}
    for name, cfg in configs.items():
        model, _ = build_model(load_config(TrainingArguments, root / cfg))
        trainable[name] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report = {
        "machine": {"cpus": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version()},
        "steps": opts.steps,
        "batch_size": load_config(TrainingArguments, root / opts.lora_config).batch_size,
        "lora_examples_per_second": round(lora, 1),
        "full_examples_per_second": round(full, 1),
        "lora_over_full": round(lora / full, 3),
        "trainable_params": trainable,
        "raw": results,
    }
    print(f"| method | trainable params | examples/s (median of {opts.repeats}) |")
    print("|---|---|---|")
    print(f"| LoRA ({opts.lora_config}) | {trainable['lora']:,} | {lora:.1f} |")
    print(f"| full fine-tune ({opts.full_config}) | {trainable['full']:,} | {full:.1f} |")
    print(f"\nLoRA / full = {lora / full:.2f}x  (torch threads {torch.get_num_threads()}, torch {torch.__version__})")
    if opts.out:
        opts.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
