"""The model as ONNX graphs run by ONNX Runtime: a fast CPU path that needs neither torch nor transformers.

A model folder (`jdlens.model`'s layout) gets an `onnx/` subfolder:

- `model.fp32.onnx`: the encoder + 8-logit head exported from torch (TorchScript exporter, opset 17,
  dynamic batch and sequence axes), then fused by ONNX Runtime's transformer optimizer (attention,
  LayerNorm, GELU, embeddings);
- `model.int8.onnx`: the fused graph with dynamic int8 quantisation of the encoder's matmuls and fused
  attention (QInt8 weights with per-channel scales: faster and closer to fp32 on this model than QUInt8
  weights or one scale per tensor); the embeddings, the first layer's feed-forward down-projection, the
  pooler and the classifier head stay fp32, so the calibrated logits and the flag thresholds tuned on
  them move as little as possible;
- `backends.json` (written by `jdlens.backends.measure_backends`): role macro-F1 of every backend on every
  split, the int8 drop against torch fp32, and whether it meets the accuracy limit.

`export_onnx` needs torch, transformers and onnx; `OnnxClassifier` needs only onnxruntime, tokenizers and
numpy, and has the same interface as `JDLensClassifier` (`logits`, `predict_proba`, `predict`,
`flag_thresholds`, `meta`, `name`, `version`, `max_length`, `batch_size`).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from jdlens.labels import ID2LABEL
from jdlens.markdown_text import clean_markdown
from jdlens.model import LogitsClassifier, read_meta

ONNX_DIR = "onnx"
PRECISIONS = ("fp32", "int8")
OPSET = 17
FIRST_FFN_OUT = "/encoder/layer.0/output/dense/"  # the first layer's feed-forward down-projection


def graph_path(folder: str | Path, precision: str = "fp32") -> Path:
    """Where a model folder keeps its ONNX graph of `precision`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown ONNX precision {precision!r} (use {' or '.join(PRECISIONS)})")
    return Path(folder) / ONNX_DIR / f"model.{precision}.onnx"


# ---------------------------------------------------------------- export (needs torch)


def _atomic_save(write: Any, dest: Path) -> None:
    """Run `write(tmp_path)` and rename the result onto `dest`, so a reader never sees half a graph."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the graph is as readable as the rest of the folder
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def export_fp32(model_folder: str | Path) -> Path:
    """Export `model_folder`'s model to `onnx/model.fp32.onnx` (fused by ORT's BERT optimizer); returns it."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModelForSequenceClassification

    folder = Path(model_folder)
    # Eager attention: a plain MatMul/Softmax pattern that ORT's optimizer fuses into one Attention op
    # (the SDPA path exports a graph the fusion does not recognise).
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, use_safetensors=True, attn_implementation="eager"
    )
    model.eval()
    cfg = model.config
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 2178, 102, 0, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    axes = {0: "batch", 1: "sequence"}
    dest = graph_path(folder, "fp32")

    def write(tmp: Path) -> None:
        raw = tmp.with_suffix(".raw.onnx")
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                # The tracer warns about Python-level shape checks in transformers' mask code and about
                # opset-17 index lowering; both are exercised by the dynamic-shape equality test
                # (tests/test_onnx.py), so they are noise for a user.
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.filterwarnings("ignore", message="Exporting aten::index operator")
                torch.onnx.export(
                    model,
                    (ids, mask, types),
                    str(raw),
                    input_names=["input_ids", "attention_mask", "token_type_ids"],
                    output_names=["logits"],
                    dynamic_axes={
                        "input_ids": axes,
                        "attention_mask": axes,
                        "token_type_ids": axes,
                        "logits": {0: "batch"},
                    },
                    opset_version=OPSET,
                    dynamo=False,  # the dynamo exporter's graph ran slower in ORT (ENVIRONMENT.md)
                )
            opt = optimize_model(
                str(raw), model_type="bert", num_heads=cfg.num_attention_heads, hidden_size=cfg.hidden_size
            )
            opt.save_model_to_file(str(tmp))
        finally:
            raw.unlink(missing_ok=True)

    _atomic_save(write, dest)
    return dest


def head_nodes(graph: Any) -> list[str]:
    """Names of the pooler and classifier matmuls: the nodes kept in fp32 by the int8 graph. Found by their
    module names (the exporter keeps them, e.g. `/classifier/Gemm`); else the last two matmuls, which in a
    topologically sorted BERT graph are the pooler and the head."""
    mm = [n for n in graph.node if n.op_type in ("MatMul", "Gemm")]
    named = [n.name for n in mm if "pooler" in n.name or "classifier" in n.name]
    return named or [n.name for n in mm[-2:]]


def export_int8(model_folder: str | Path) -> Path:
    """`onnx/model.int8.onnx` from the fp32 graph: dynamic int8, per-channel weights, head kept fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = graph_path(model_folder, "fp32")
    if not src.is_file():
        export_fp32(model_folder)
    graph = onnx.load(str(src), load_external_data=False).graph
    head = head_nodes(graph)
    # quantize_dynamic first rewrites each Gemm as MatMul (named `<gemm>_MatMul`) + Add, so both names.
    keep = head + [f"{name}_MatMul" for name in head]
    # The first layer's feed-forward down-projection stays fp32 too: on the jdlens model quantising it
    # cost the most accuracy (worst split 0.82 -> 0.47 points of role macro-F1 lost when kept fp32) for
    # one matmul in 18 (int8 / fp32 speed 2.20x -> 2.14x, one thread). Keeping every layer's down-projection
    # fp32 lost only 0.15 points but ran at 1.65x.
    keep += [n.name for n in graph.node if n.op_type == "MatMul" and FIRST_FFN_OUT in n.name]
    dest = graph_path(model_folder, "int8")

    def write(tmp: Path) -> None:
        # quantize_dynamic logs a "consider pre-processing" advice on the root logger; the graph is already
        # optimised by ORT's transformer optimizer, which is that pre-processing.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(
                str(src),
                str(tmp),
                per_channel=True,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=keep,
                # The encoder's matmuls and fused attention only: quantising the embedding table too
                # (QEmbedLayerNormalization) cost accuracy and bought no speed on the jdlens model.
                op_types_to_quantize=["MatMul", "Attention"],
                # The fused ops (Attention, SkipLayerNormalization) are in ORT's own domain, where ONNX shape
                # inference gives no types: their tensors are fp32.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            root.setLevel(level)

    _atomic_save(write, dest)
    return dest


def export_onnx(model_folder: str | Path, int8: bool = True) -> dict[str, Path]:
    """Both graphs (or the fp32 one only) into `model_folder/onnx/`; returns {precision: path}."""
    out = {"fp32": export_fp32(model_folder)}
    if int8:
        out["int8"] = export_int8(model_folder)
    return out


# ---------------------------------------------------------------- inference (no torch)


def cpu_count() -> int:
    """Threads for ONNX Runtime: the cores this process may run on (its affinity mask), or torch's thread
    count when torch is already loaded and set (a Ray actor's 1 thread, the server's `torch_threads`)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class OnnxClassifier(LogitsClassifier):
    """Sentence classifier over an ONNX graph in ONNX Runtime, with the interface of `JDLensClassifier`."""

    def __init__(
        self, session: Any, tokenizer: Any, meta: dict[str, Any], precision: str, folder: Path | None = None
    ) -> None:
        super().__init__(meta)
        self.session = session
        self.folder = folder
        self.tokenizer = tokenizer
        self.precision = precision
        self.input_names = {i.name for i in session.get_inputs()}
        self.backend = f"onnx-{precision}"
        self.pad_id = 0

    @classmethod
    def load(cls, folder: str | Path, precision: str = "fp32", threads: int = 0) -> OnnxClassifier:
        """Load `folder/onnx/model.<precision>.onnx` and the folder's `tokenizer.json`. Raises
        FileNotFoundError or ValueError (never a crash later) when the graph is missing or unreadable."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        path = graph_path(folder, precision)
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no ONNX graph {path.relative_to(folder)}")
        if not (folder / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{folder} has no tokenizer.json (the ONNX path tokenises with `tokenizers`)")
        meta = read_meta(folder)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or cpu_count()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: no per-node warnings on stderr
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for a bad graph
            raise ValueError(f"cannot load ONNX graph {path}: {str(exc)[:300]}") from exc
        width = session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(ID2LABEL):
            raise ValueError(f"ONNX graph {path} gives {width} logits per sentence, jdlens needs {len(ID2LABEL)}")
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # The same work as JDLensClassifier: truncate to max_length (longest_first, right side), pad per
        # batch ourselves (the saved tokenizer.json may carry other padding/truncation settings).
        tokenizer.no_padding()
        clf = cls(session, tokenizer, meta, precision, folder)
        tokenizer.enable_truncation(max_length=clf.max_length)
        clf.pad_id = tokenizer.token_to_id("[PAD]") or 0
        return clf

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (with [CLS]/[SEP], truncated to max_length), markdown removed first."""
        return [e.ids for e in self.tokenizer.encode_batch([clean_markdown(t) for t in texts])]

    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw 8-way logits in input order; length-sorted batches padded to their own longest sentence."""
        out = np.zeros((len(texts), len(ID2LABEL)), dtype=np.float32)
        if not texts:
            return out
        ids = self.encode(texts)
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            width = max(len(ids[i]) for i in idx)
            input_ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
            out[idx] = self.session.run(["logits"], {k: v for k, v in feed.items() if k in self.input_names})[0]
        return out
