"""Run by tests/test_ddp.py under `torchrun --nproc_per_node=2`: trains a few steps with the real recipe
and writes what this rank saw and ended with."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from jdlens.records import load_records
from training.args import TrainingArguments
from training.recipe import encode, init_distributed, make_loader, train


def main(encoder: str, data: str, out: str) -> None:
    info = init_distributed()
    records = load_records(Path(data))[:96]
    args = TrainingArguments(
        base_model=encoder,
        epochs=1,
        max_steps=4,
        batch_size=8,
        max_length=32,
        lora_r=4,
        learning_rate=0.01,
        tune_flag_thresholds=False,
        calibrate=False,  # rank 0 alone folds a temperature into its head after training; compare the training
        register=False,
    )
    result = train(args, records, records[:16] if info.is_main else [], dist_info=info)
    model = result.classifier.model
    digest = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(p.detach().float().cpu().numpy().tobytes())
    trained = [p for p in model.parameters() if p.requires_grad]
    # The sharding of epoch 1, as the recipe's loader samples it on this rank.
    loader = make_loader(encode(result.classifier.tokenizer, records, 32), result.classifier.tokenizer, args, info)
    loader.sampler.set_epoch(1)
    Path(out, f"rank{info.rank}.json").write_text(
        json.dumps(
            {
                "rank": info.rank,
                "world_size": info.world_size,
                "weights_sha256": digest.hexdigest(),
                "indices": list(loader.sampler),
                "steps": result.steps,
                "trainable_norm": float(sum(p.detach().norm() for p in trained)),
                "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
