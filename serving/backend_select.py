"""Which inference backend the server runs: `backend_precision` in configs/serve.yaml.

- `auto` (default): among the CPU backends allowed by the accuracy evidence, the fastest in a short
  start-up probe. ONNX fp32 always qualifies (it computes the same function as torch fp32); ONNX int8
  and torch bf16 only when the model folder's `onnx/backends.json` says they lose at most 0.5 points of
  role macro-F1 on every split (`jdlens.backends`); bf16 also only on a CPU with AVX512_BF16 or AMX and
  when the speeds recorded with that evidence put it ahead of the ONNX candidates (it imports torch).
  On a CUDA machine: torch fp32 on the GPU.
- `fp32`: ONNX fp32 (torch when the folder has no graph); `int8`: ONNX int8 (used even without evidence,
  with a warning); `bf16`: torch under bf16 autocast on CPUs with AVX512_BF16 or AMX (else torch fp32,
  with a note); `torch`: torch fp32.

The choice, the reason and the figures behind it are kept on the predictor (`backend_choice`), printed
at start-up and shown by `GET /models/jdlens`.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

PRECISIONS = ("auto", "fp32", "int8", "bf16", "torch")
# Probe sentences: JD-like lengths from a few tokens to a long requirement, as served traffic has.
_PROBE = [
    "Build retrieval-augmented generation features on top of LLM APIs and a vector database.",
    "PhD required.",
    "Train and fine-tune transformer models with PyTorch on multi-GPU clusters, and ship them to production.",
    "You will publish at top venues such as NeurIPS and ICML.",
    "Competitive salary and equity.",
    "5+ years of experience with Python, Kubernetes and distributed systems, ideally in a fast-moving startup.",
    "Design evals for agents and prompt pipelines.",
    "About us",
]


def probe_texts(n: int = 64) -> list[str]:
    return [_PROBE[i % len(_PROBE)] for i in range(n)]


def _cuda() -> bool:
    """A GPU torch can use; checked without importing torch on machines with no NVIDIA driver."""
    if not Path("/proc/driver/nvidia/version").exists():
        return False
    import torch

    return bool(torch.cuda.is_available())


def probe_rate(predictor: Any, texts: list[str], repeats: int = 3) -> float:
    """Sentences per second of `predictor` on `texts` (median of `repeats`, after a warm-up)."""
    predictor.predict_proba(texts[:8])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict_proba(texts)
        times.append(time.perf_counter() - start)
    return len(texts) / max(statistics.median(times), 1e-9)


def _identity(src: Any, dst: Any) -> Any:
    """Give a predictor loaded from the same folder the registry identity of the first one."""
    dst.name, dst.version = src.name, src.version
    for key in ("aliases", "metrics"):
        if key in src.meta:
            dst.meta[key] = src.meta[key]
    return dst


def load_for_serving(spec: str, precision: str = "auto", load: Any = None, probe: list[str] | None = None) -> Any:
    """Load `spec` on the backend `precision` asks for (see the module docstring); the returned predictor
    carries `backend_choice` = {backend, requested, reason, figures}."""
    from jdlens import backends
    from jdlens.onnx_model import OnnxClassifier

    if precision not in PRECISIONS:
        raise ValueError(f"backend_precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if load is None:
        from jdlens.predictors import load_predictor as load
    figures: dict[str, Any] = {}
    if precision == "torch" or (precision == "auto" and _cuda()):
        device = "cuda" if precision == "auto" else None
        chosen = load(spec, backend="torch", device=device)
        reason = "asked for" if precision == "torch" else "a CUDA GPU is present: torch on the GPU"
    elif precision == "bf16":
        if backends.bf16_supported():
            chosen, reason = load(spec, backend="torch", quantize="bf16"), "asked for; the CPU has native bf16"
        else:
            chosen, reason = load(spec, backend="torch"), "bf16 asked for, but this CPU has no AVX512_BF16/AMX: fp32"
    else:
        chosen = load(spec, backend="onnx-int8" if precision == "int8" else "onnx-fp32")
        if not isinstance(chosen, OnnxClassifier):
            reason = "the model folder has no usable ONNX graph: torch fp32"
        elif precision != "auto":
            info = backends.read_backends(chosen.folder)
            reason = "asked for"
            if precision == "int8" and not backends.meets_limit(info, "onnx-int8"):
                reason += (
                    "; WARNING: no accuracy evidence that int8 stays within "
                    f"{backends.ACCURACY_LIMIT_POINTS} points of fp32 (onnx/backends.json)"
                )
        else:
            chosen, reason, figures = _auto(chosen, probe or probe_texts())
    backend = getattr(chosen, "backend", "torch-fp32")
    chosen.backend_choice = {"backend": backend, "requested": precision, "reason": reason, "figures": figures}
    return chosen


def _candidates(fp32: Any, info: dict[str, Any] | None) -> tuple[list[Any], list[str]]:
    """The backends `auto` may run besides ONNX fp32, and why each other one is left out. ONNX int8 and
    torch bf16 need recorded evidence that they meet the accuracy limit; bf16 also a CPU with native bf16
    (checked only then, since it imports torch, ~2 s of start-up)."""
    from jdlens import backends

    entries = (info or {}).get("backends") or {}
    out, skipped = [fp32], []
    for backend in ("onnx-int8", "torch-bf16"):
        entry = entries.get(backend) or {}
        if not backends.meets_limit(info, backend):
            skipped.append(
                f"{backend} loses {entry['drop_points']} points > {backends.ACCURACY_LIMIT_POINTS}"
                if "drop_points" in entry
                else f"{backend}: no accuracy evidence"
            )
            continue
        if backend == "torch-bf16":
            # Loading torch costs ~3 s of start-up (the /ping budget is 10 s): probe bf16 only when the
            # speeds recorded with the evidence (one run, one machine) put it ahead of the ONNX candidates.
            onnx_rates = [(entries.get(c.backend) or {}).get("sentences_per_s", 0.0) for c in out]
            recorded = entry.get("sentences_per_s", 0.0)
            if recorded < max(onnx_rates):
                skipped.append(f"torch-bf16 recorded {recorded} sent/s, below {max(onnx_rates)} for ONNX")
                continue
        if backend == "torch-bf16" and not backends.bf16_supported():
            skipped.append("torch-bf16: this CPU has no native bf16")
            continue
        try:
            out.append(_identity(fp32, backends.load_backend(fp32.folder, backend)))
        except (OSError, ValueError) as exc:
            skipped.append(f"{backend} cannot be loaded ({exc})")
    return out, skipped


def _auto(fp32: Any, texts: list[str]) -> tuple[Any, str, dict[str, Any]]:
    """ONNX fp32 and every backend with accuracy evidence (ONNX int8, torch bf16): the fastest in a short
    start-up probe on the same sentences."""
    from jdlens import backends

    info = backends.read_backends(fp32.folder)
    candidates, skipped = _candidates(fp32, info)
    left_out = f"; left out: {', '.join(skipped)}" if skipped else ""
    if len(candidates) == 1:
        return fp32, f"the only candidate: ONNX fp32{left_out}", {}
    rates = {c.backend: probe_rate(c, texts) for c in candidates}
    entries = (info or {}).get("backends") or {}
    figures = {
        "probe_sentences_per_s": {k: round(v, 1) for k, v in rates.items()},
        "probe_sentences": len(texts),
        "drop_points": {c.backend: (entries.get(c.backend) or {}).get("drop_points", 0.0) for c in candidates},
        "limit_points": backends.ACCURACY_LIMIT_POINTS,
    }
    best = max(candidates, key=lambda c: rates[c.backend])
    drops = ", ".join(f"{k} {v}" for k, v in figures["drop_points"].items() if k != "onnx-fp32")
    reason = (
        f"fastest in a start-up probe ({', '.join(f'{k} {v:.0f} sent/s' for k, v in rates.items())}); worst-split "
        f"loss of role macro-F1 vs torch fp32 in points: {drops} (limit {backends.ACCURACY_LIMIT_POINTS}){left_out}"
    )
    return best, reason, figures


def describe_choice(predictor: Any) -> str:
    """One line for the start-up log."""
    choice = getattr(predictor, "backend_choice", None) or {}
    backend = choice.get("backend", getattr(predictor, "backend", "torch-fp32"))
    return (
        f"inference backend {backend} (backend_precision: {choice.get('requested', '?')}; {choice.get('reason', '')})"
    )
