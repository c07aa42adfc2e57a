"""The training recipe: LoRA (or full) fine-tuning of an encoder with one 8-logit head.

Flat on purpose, in the torchtune manner: build model -> encode data -> loop over epochs -> evaluate
on dev -> keep the best weights. Runs on CPU or CUDA (bf16 autocast where the hardware multiplies bf16
natively), alone or under `torchrun --nproc_per_node=N` with DDP (nccl on GPUs, gloo on CPU), where
every rank sees its own shard of each epoch (DistributedSampler) and DDP averages the gradients.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from jdlens.labels import FLAGS, ID2LABEL, LABEL2ID, NUM_ROLES, ROLES
from jdlens.markdown_text import clean_markdown
from jdlens.model import JDLensClassifier
from jdlens.paths import offline_by_default, resolve_base_model
from training.args import TrainingArguments


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainResult:
    classifier: JDLensClassifier
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_dev_score: float = 0.0
    examples_per_second: float = 0.0
    train_seconds: float = 0.0
    steps: int = 0
    trainable_params: int = 0
    total_params: int = 0
    role_temperature: float = 1.0  # folded into the head (1.0 = not calibrated)
    flag_temperature: float = 1.0
    dev_ece_before: float = float("nan")  # role expected calibration error on the selection split
    dev_ece_after: float = float("nan")


def pick_device(args: TrainingArguments, dist_info: DistInfo) -> torch.device:
    want_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if want_cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda but no CUDA device is available")
        return torch.device("cuda", dist_info.local_rank)
    return torch.device("cpu")


def use_bf16(args: TrainingArguments, device: torch.device) -> bool:
    """Whether the forward pass runs under bf16 autocast: forced by `precision`, else where it is fast
    (CUDA with bf16, or a CPU with native bf16 dot products; see jdlens.hardware)."""
    if args.precision != "auto":
        return args.precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    from jdlens.hardware import cpu_has_fast_bf16

    return cpu_has_fast_bf16()


def make_optimizer(params: list[torch.nn.Parameter], args: TrainingArguments) -> torch.optim.Optimizer:
    impl = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[args.optimizer_impl]
    return torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay, **impl)


def make_schedule(optim: torch.optim.Optimizer, args: TrainingArguments, total_steps: int) -> Any:
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    make = get_cosine_schedule_with_warmup if args.lr_schedule == "cosine" else get_linear_schedule_with_warmup
    return make(optim, math.ceil(args.warmup_ratio * total_steps), total_steps)


def train_step(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    optim: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    role_w: torch.Tensor,
    flag_pw: torch.Tensor,
    args: TrainingArguments,
    bf16: bool,
) -> torch.Tensor:
    """One optimizer step on one batch (the recipe and `python -m training.benchmark` share it); returns
    the loss. Only the forward pass is autocast; the loss is computed in fp32 from the logits."""
    role, flags = batch["role"], batch["flags"]
    inputs = {k: v for k, v in batch.items() if k not in ("role", "flags")}
    with torch.autocast(role.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(**inputs).logits
    loss = compute_loss(logits, role, flags, role_w, flag_pw, args.label_smoothing)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optim.step()
    return loss.detach()


def init_distributed() -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def build_model(args: TrainingArguments) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    offline_by_default()
    path = resolve_base_model(args.base_model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = AutoConfig.from_pretrained(
        path, num_labels=len(ID2LABEL), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
    )
    # The classification head is new by design. Loading the whole *ForSequenceClassification from the
    # encoder checkpoint makes transformers print a load report calling the head "MISSING"; instead the
    # model is built from its config (head initialised as usual) and given the pretrained encoder, whose
    # checkpoint matches it key for key. The weights are the same as from_pretrained's.
    model = AutoModelForSequenceClassification.from_config(config)
    setattr(model, model.base_model_prefix, AutoModel.from_pretrained(path, config=config, use_safetensors=True))
    if args.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            target_modules=list(args.lora_target_modules),
            modules_to_save=list(args.modules_to_save),
        )
        with warnings.catch_warnings():
            # peft 0.21 probes the deprecated `is_gradient_checkpointing` attribute of every model it wraps,
            # which makes transformers 5 raise a FutureWarning for a call jdlens never makes. Only that one
            # message is ignored, and only here.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(model, lora)
    return model, tokenizer


def encode(tokenizer: Any, records: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    # The model sees sentences without markdown emphasis and link syntax, at training and at serving time.
    enc = tokenizer([clean_markdown(r["text"]) for r in records], truncation=True, max_length=max_length)
    rows = []
    for i, r in enumerate(records):
        row = {k: enc[k][i] for k in enc.keys()}
        row["role"] = ROLES.index(r["role"])
        row["flags"] = [float(f in r.get("flags", [])) for f in FLAGS]
        rows.append(row)
    return rows


def make_collate(tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
    def collate(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        feats = [{k: v for k, v in b.items() if k not in ("role", "flags")} for b in batch]
        out = dict(tokenizer.pad(feats, return_tensors="pt"))  # dynamic padding to the batch's longest
        out["role"] = torch.tensor([b["role"] for b in batch])
        out["flags"] = torch.tensor([b["flags"] for b in batch])
        return out

    return collate


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar token counts: examples are shuffled, cut into pools of 50 batches, each
    pool sorted by length and cut into batches, and the batches shuffled again. Dynamic padding then pads
    a batch to a length close to all of its examples instead of to a random long one."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, pool_batches: int = 50) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.pool = batch_size * pool_batches
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):  # noqa: ANN204 - a Sampler's iterator
        order = torch.randperm(len(self.lengths), generator=self.gen).tolist()
        batches = []
        for p in range(0, len(order), self.pool):
            pool = sorted(order[p : p + self.pool], key=lambda i: self.lengths[i])
            batches += [pool[b : b + self.batch_size] for b in range(0, len(pool), self.batch_size)]
        for k in torch.randperm(len(batches), generator=self.gen).tolist():
            yield batches[k]

    def __len__(self) -> int:
        return sum(
            math.ceil(len(self.lengths[p : p + self.pool]) / self.batch_size)
            for p in range(0, len(self.lengths), self.pool)
        )


def make_loader(rows: list[dict[str, Any]], tokenizer: Any, args: TrainingArguments, dist_info: DistInfo) -> DataLoader:
    if dist_info.enabled:
        sampler = DistributedSampler(
            rows, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True, seed=args.seed
        )
        return DataLoader(rows, batch_size=args.batch_size, sampler=sampler, collate_fn=make_collate(tokenizer))
    if args.length_bucketing:
        sampler = LengthBucketBatchSampler([len(r["input_ids"]) for r in rows], args.batch_size, args.seed)
        return DataLoader(rows, batch_sampler=sampler, collate_fn=make_collate(tokenizer))
    gen = torch.Generator().manual_seed(args.seed)
    return DataLoader(rows, batch_size=args.batch_size, shuffle=True, generator=gen, collate_fn=make_collate(tokenizer))


def loss_weights(records: list[dict[str, Any]], args: TrainingArguments) -> tuple[torch.Tensor, torch.Tensor]:
    """Role class weights (inverse frequency, sqrt-damped by default) and per-flag BCE pos_weight."""
    counts = np.array([sum(r["role"] == role for r in records) for role in ROLES], dtype=float) + 1.0
    if args.role_class_weights == "none":
        role_w = np.ones(len(ROLES))
    else:
        inv = counts.sum() / (len(ROLES) * counts)
        role_w = np.sqrt(inv) if args.role_class_weights == "sqrt" else inv
    pos = np.array([sum(f in r.get("flags", []) for r in records) for f in FLAGS], dtype=float) + 1.0
    flag_pw = np.minimum(args.flag_pos_weight_cap, np.sqrt((len(records) - pos + 1.0) / pos))
    return torch.tensor(role_w, dtype=torch.float32), torch.tensor(flag_pw, dtype=torch.float32)


def compute_loss(
    logits: torch.Tensor,
    role: torch.Tensor,
    flags: torch.Tensor,
    role_w: torch.Tensor,
    flag_pw: torch.Tensor,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy over the 5 role logits plus binary cross-entropy over the 3 flag logits."""
    logits = logits.float()
    ce = F.cross_entropy(logits[:, :NUM_ROLES], role, weight=role_w, label_smoothing=label_smoothing)
    bce = F.binary_cross_entropy_with_logits(logits[:, NUM_ROLES:], flags, pos_weight=flag_pw)
    return ce + bce


def dev_score(metrics: dict[str, Any]) -> float:
    """Early-stopping score: the mean of role macro-F1 and the mean flag F1."""
    flag_f1 = np.mean([m["f1"] for m in metrics["flags"].values()])
    return float((metrics["role_macro_f1"] + flag_f1) / 2)


def tune_thresholds(flag_p: np.ndarray, gold: list[dict[str, Any]]) -> dict[str, float]:
    """Per flag, the probability threshold with the best F1 on dev (ties go to the one nearest 0.5)."""
    out = {}
    for j, f in enumerate(FLAGS):
        y = np.array([f in g.get("flags", []) for g in gold])
        best = (-1.0, 0.5)
        for t in np.arange(0.2, 0.81, 0.05):
            pred = flag_p[:, j] >= t
            tp = float((pred & y).sum())
            f1 = 2 * tp / max(float(pred.sum() + y.sum()), 1.0)
            if f1 > best[0] + 1e-9 or (abs(f1 - best[0]) < 1e-9 and abs(t - 0.5) < abs(best[1] - 0.5)):
                best = (f1, float(round(t, 2)))
        out[f] = best[1]
    return out


def fit_temperature(logits: np.ndarray, targets: np.ndarray, binary: bool) -> float:
    """The temperature T that minimises the negative log-likelihood of `targets` under logits / T
    (softmax over classes, or sigmoid per column when `binary`); a grid search is enough for one scalar."""
    z = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(targets)
    best = (float("inf"), 1.0)
    for t in np.arange(0.5, 5.001, 0.05):
        if binary:
            nll = F.binary_cross_entropy_with_logits(z / t, y.double()).item()
        else:
            nll = F.cross_entropy(z / t, y.long()).item()
        if nll < best[0] - 1e-12:
            best = (nll, float(round(t, 2)))
    return best[1]


def role_ece(role_logits: np.ndarray, roles: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top role probability (the same measure `jdlens eval` reports)."""
    from jdlens.evaluate import expected_calibration_error

    z = role_logits - role_logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return expected_calibration_error(p.max(axis=1), (p.argmax(axis=1) == roles).astype(float), bins)


def fold_temperature(model: torch.nn.Module, role_t: float, flag_t: float) -> None:
    """Divide the head's role and flag logits by their temperatures by scaling its weights, so every
    backend (local, exported folder, vLLM) returns calibrated logits with no extra step."""
    scale = torch.tensor([1.0 / role_t] * NUM_ROLES + [1.0 / flag_t] * (len(ID2LABEL) - NUM_ROLES))
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and m.out_features == len(ID2LABEL) and "classifier" in name:
                m.weight.mul_(scale.to(m.weight)[:, None])
                if m.bias is not None:
                    m.bias.mul_(scale.to(m.bias))


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def train(
    args: TrainingArguments,
    train_records: list[dict[str, Any]],
    dev_records: list[dict[str, Any]],
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    dist_info: DistInfo | None = None,
) -> TrainResult:
    """Fine-tune and return the best classifier (by dev score). Only rank 0's result is meaningful."""
    from tqdm.auto import tqdm

    from jdlens.evaluate import sentence_metrics
    from jdlens.model import sentence_predictions

    dist_info = dist_info or init_distributed()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = pick_device(args, dist_info)
    bf16 = use_bf16(args, device)

    records = list(train_records)
    if args.max_train_examples:
        rng = np.random.default_rng(args.seed)
        records = [records[i] for i in rng.permutation(len(records))[: args.max_train_examples]]
    model, tokenizer = build_model(args)
    model.to(device)
    rows = encode(tokenizer, records, args.max_length)
    loader = make_loader(rows, tokenizer, args, dist_info)
    role_w, flag_pw = (t.to(device) for t in loss_weights(records, args))
    if dist_info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    params = [p for p in model.parameters() if p.requires_grad]
    optim = make_optimizer(params, args)
    steps_per_epoch = len(loader)
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    sched = make_schedule(optim, args, total)
    forward_model = torch.compile(model, dynamic=True) if args.compile else model

    result = TrainResult(classifier=None)  # type: ignore[arg-type]
    result.trainable_params = sum(p.numel() for p in params)
    result.total_params = sum(p.numel() for p in model.parameters())
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs, step, seen, t0 = 0, 0, 0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        model.train()
        bar = tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", disable=not dist_info.is_main, leave=False)
        losses = []
        for batch in bar:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = train_step(forward_model, batch, optim, params, role_w, flag_pw, args, bf16)
            sched.step()
            step += 1
            seen += len(batch["role"]) * dist_info.world_size
            losses.append(loss.item())
            rate = seen / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", ex_s=f"{rate:.0f}")
            if args.max_steps and step >= args.max_steps:
                break
        record = {"epoch": float(epoch), "train_loss": float(np.mean(losses)), "examples_per_second": rate}
        stop = torch.zeros(1)
        # Epochs before eval_from_epoch are not evaluated (their weights are never the best in practice);
        # the last epoch always is, so a run always has a best state.
        evaluate_now = (
            epoch >= args.eval_from_epoch or epoch == args.epochs or bool(args.max_steps and step >= args.max_steps)
        )
        if dist_info.is_main and not evaluate_now:
            print(f"epoch {epoch}: train_loss={record['train_loss']:.4f} (not evaluated)", flush=True)
            if on_epoch:
                on_epoch(record)
        elif dist_info.is_main:
            eval_start = time.perf_counter()
            clf = JDLensClassifier(unwrap(model), tokenizer, {"max_length": args.max_length})
            # Selection runs in the training precision (bf16 costs at most 0.1 points of role macro-F1 on any
            # split, see BENCHMARKS.md); calibration, thresholds and the final evaluation run in fp32.
            clf.bf16 = bf16
            if dev_records:
                texts = [r["text"] for r in dev_records]
                role_p, flag_p = clf.predict_proba(texts)
                m = sentence_metrics(dev_records, sentence_predictions(texts, role_p, flag_p, clf.flag_thresholds))
                score = dev_score(m)
                record.update(
                    {
                        "dev_role_macro_f1": m["role_macro_f1"],
                        "dev_score": score,
                        **{f"dev_flag_{f}_f1": v["f1"] for f, v in m["flags"].items()},
                    }
                )
            else:
                score = -record["train_loss"]
            record["eval_seconds"] = time.perf_counter() - eval_start
            if best_state is None or score > result.best_dev_score:
                result.best_dev_score, result.best_epoch, bad_epochs = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in unwrap(model).state_dict().items()}
            else:
                bad_epochs += 1
            model.train()
            print(f"epoch {epoch}: " + ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "epoch"), flush=True)
            if on_epoch:
                on_epoch(record)
            stop[0] = float(bad_epochs >= args.patience or (args.max_steps and step >= args.max_steps))
        result.history.append(record)
        if dist_info.enabled:
            dist.broadcast(stop, src=0)  # every rank stops together
        if stop.item():
            break

    result.train_seconds = time.perf_counter() - t0
    result.steps = step
    result.examples_per_second = seen / max(result.train_seconds, 1e-9)
    base = unwrap(model)
    if dist_info.is_main and best_state is not None:
        base.load_state_dict(best_state)
    clf = JDLensClassifier(base.eval(), tokenizer, {"max_length": args.max_length})
    if dist_info.is_main and dev_records and args.calibrate:
        logits = clf.logits([r["text"] for r in dev_records])
        roles = np.array([ROLES.index(r["role"]) for r in dev_records])
        flags = np.array([[float(f in r.get("flags", [])) for f in FLAGS] for r in dev_records])
        result.role_temperature = fit_temperature(logits[:, :NUM_ROLES], roles, binary=False)
        result.flag_temperature = fit_temperature(logits[:, NUM_ROLES:], flags, binary=True)
        result.dev_ece_before = role_ece(logits[:, :NUM_ROLES], roles)
        result.dev_ece_after = role_ece(logits[:, :NUM_ROLES] / result.role_temperature, roles)
        fold_temperature(base, result.role_temperature, result.flag_temperature)
        clf.meta.update({"role_temperature": result.role_temperature, "flag_temperature": result.flag_temperature})
    if dist_info.is_main and dev_records and args.tune_flag_thresholds:
        _, flag_p = clf.predict_proba([r["text"] for r in dev_records])
        clf.flag_thresholds = tune_thresholds(flag_p, dev_records)
    result.classifier = clf
    return result


def merge_for_export(clf: JDLensClassifier) -> JDLensClassifier:
    """Fold LoRA adapters into the base weights: a plain *ForSequenceClassification model."""
    model = clf.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    merged = JDLensClassifier(model.eval(), clf.tokenizer, dict(clf.meta))
    merged.flag_thresholds = dict(clf.flag_thresholds)
    merged.meta["flag_thresholds"] = dict(clf.flag_thresholds)
    return merged
