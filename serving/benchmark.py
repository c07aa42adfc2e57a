"""CPU inference benchmark: HF pipeline vs the jdlens engine (torch fp32/bf16, ONNX Runtime fp32/int8) vs the
FLOP floor, int8's accuracy on every split, and the HTTP service.

    python -m serving.benchmark --model champion|FOLDER [--quick] [--out BENCH.json]

Every figure comes from the same run on the same sentences (the test split), and the claims are ratios,
so machine noise mostly cancels: the in-process paths run interleaved, repeat by repeat, and each
reports the median of its repeats. Prints a markdown table and writes the full results as JSON.
Run it on a quiet machine: absolute numbers from a busy one are low and its ratios noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.launch import free_port, running

# Targets the engine is reported against (never asserted in tests).
TARGETS = {
    "engine_vs_pipeline_single": 2.5,  # >= x
    "engine_vs_pipeline_batched": 1.25,  # >= x
    "onnx_fp32_fraction_of_floor": 0.8,  # >= fraction of the FLOP floor (issue 10)
    "int8_vs_fp32": 2.0,  # ONNX int8 >= x ONNX fp32 (the faster fp32 path)
    "int8_f1_drop_points": 0.5,  # int8 role macro-F1 at most this many points below torch fp32, on every split
    "service_vs_engine": 0.8,  # >= fraction, at the highest concurrency, with no errors
}
FLOP_FORMULA = (
    "FLOPs/sentence = 2 * P_tok * T + 2 * P_cls + L * 4 * T^2 * H, where P_tok = weights of the encoder's "
    "Linear layers (applied to every token; L * (4H^2 + 2HI) for BERT), P_cls = pooler + classifier weights "
    "(applied to [CLS] only), T = mean tokens per sentence (with [CLS]/[SEP]), and 4 * T^2 * H per layer is "
    "attention's Q.K^T and A.V; embeddings, layer norms, softmax and GELU are not counted"
)


@dataclass
class Settings:
    sentences: int = 0  # 0 = the whole test split
    repeats: int = 3
    batch_size: int = 32
    jd_sentences: int = 30
    concurrency: tuple[int, ...] = (1, 8, 32)
    requests: tuple[int, ...] = (40, 80, 160)
    level_time_s: float = 120.0  # per concurrency level: no new request is started after this
    request_timeout_s: float = 120.0
    server_start_s: float = 180.0
    matmul_s: float = 1.0  # seconds per matmul repeat
    split_sentences: int = 0  # sentences per split for the accuracy check (0 = all)
    service: bool = True

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            sentences=48,
            repeats=1,
            jd_sentences=10,
            requests=(3, 8, 32),
            level_time_s=20.0,
            request_timeout_s=60.0,
            matmul_s=0.2,
            split_sentences=40,
        )


# ---------------------------------------------------------------- inputs


def default_root() -> Path:
    """The project holding data/ and configs/: $JDLENS_HOME (or the current folder), else this checkout."""
    from jdlens.config import repo_root

    root = repo_root()
    if (root / "data/sentences/test.jsonl").exists():
        return root
    return Path(__file__).resolve().parent.parent


def resolve_model(spec: str) -> tuple[Path, str | None]:
    """A model folder, or a registry spec (champion, models:/jdlens/N, ...) -> its downloaded folder and version."""
    folder = Path(spec)
    if folder.is_dir():
        return folder.resolve(), None
    from jdlens import tracking

    if tracking.parse_model_spec(spec) is None:
        raise ValueError(f"--model {spec!r} is neither a model folder nor a registry spec (champion, models:/jdlens/N)")
    client = tracking.setup()
    mv = tracking.resolve_version(client, spec)
    return tracking.download_version(client, mv).resolve(), str(mv.version)


def load_sentences(root: Path, n: int = 0) -> list[dict[str, Any]]:
    """The test split's sentence records; with n, n of them spread over the file (so every label shows up)."""
    path = root / "data/sentences/test.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    if n and n < len(rows):
        step = len(rows) / n
        rows = [rows[int(i * step)] for i in range(n)]
    return rows


def token_stats(tokenizer: Any, texts: list[str], max_length: int, batch_size: int) -> dict[str, Any]:
    """Tokens per sentence, and the tokens each batched path really computes once batches are padded."""
    lengths = np.array(
        [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]], dtype=float
    )

    def padded(order: list[int]) -> float:
        total = 0.0
        for b in range(0, len(order), batch_size):
            chunk = lengths[order[b : b + batch_size]]
            total += chunk.max() * len(chunk)
        return total / len(texts)

    by_chars = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # the engine's order
    return {
        "mean_tokens": round(float(lengths.mean()), 2),
        "mean_tokens_squared": round(float((lengths**2).mean()), 1),
        "min_tokens": int(lengths.min()),
        "max_tokens": int(lengths.max()),
        "padded_tokens_per_sentence_engine": round(padded(by_chars), 2),
        "padded_tokens_per_sentence_pipeline_batched": round(padded(list(range(len(texts)))), 2),
    }


# ---------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    import torch
    import transformers

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


# ---------------------------------------------------------------- FLOPs


def model_flops(model: Any, mean_tokens: float) -> dict[str, Any]:
    """FLOPs per sentence at `mean_tokens` (see FLOP_FORMULA), from the model's own Linear layers."""
    import torch

    cfg = model.config
    per_token = per_sentence = 0
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            if ".encoder." in f".{name}.":
                per_token += mod.weight.numel()
            else:
                per_sentence += mod.weight.numel()
    L, H, Inter = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size
    T = mean_tokens
    matmul = 2 * per_token * T + 2 * per_sentence
    attention = L * 4 * T * T * H
    return {
        "formula": FLOP_FORMULA,
        "layers": L,
        "hidden": H,
        "intermediate": Inter,
        "heads": cfg.num_attention_heads,
        "params_total": int(sum(p.numel() for p in model.parameters())),
        "params_in_matmuls_per_token": int(per_token),
        "params_in_matmuls_per_sentence": int(per_sentence),
        "tokens": T,
        "gflop_matmul": matmul / 1e9,
        "gflop_attention": attention / 1e9,
        "gflop_per_sentence": (matmul + attention) / 1e9,
    }


class MatmulProbe:
    """fp32 torch.matmul throughput on one encoder layer's shapes at a batch of `batch` sentences x T tokens:
    4 x (N,H)@(H,H) for Q/K/V/output, (N,H)@(H,I) and (N,I)@(I,H) for the feed-forward, N = batch*T."""

    def __init__(self, hidden: int, intermediate: int, tokens: int, batch: int, seconds: float) -> None:
        import torch

        g = torch.Generator().manual_seed(0)
        n = batch * max(1, tokens)
        self.shape = {"N": n, "H": hidden, "I": intermediate}
        self.x_h = torch.randn(n, hidden, generator=g)
        self.x_i = torch.randn(n, intermediate, generator=g)
        self.w_hh = torch.randn(hidden, hidden, generator=g)
        self.w_hi = torch.randn(hidden, intermediate, generator=g)
        self.w_ih = torch.randn(intermediate, hidden, generator=g)
        self.o_h = torch.empty(n, hidden)
        self.o_i = torch.empty(n, intermediate)
        self.flops_per_pass = 2 * n * (4 * hidden * hidden + 2 * hidden * intermediate)
        self.seconds = seconds
        self.passes = 1

    def one_pass(self) -> None:
        import torch

        for _ in range(4):
            torch.matmul(self.x_h, self.w_hh, out=self.o_h)
        torch.matmul(self.x_h, self.w_hi, out=self.o_i)
        torch.matmul(self.x_i, self.w_ih, out=self.o_h)

    def warm_up(self) -> None:
        self.one_pass()
        t0 = time.perf_counter()
        self.one_pass()
        per = max(time.perf_counter() - t0, 1e-6)
        self.passes = max(2, int(self.seconds / per))

    def run(self) -> int:
        for _ in range(self.passes):
            self.one_pass()
        return self.passes


# ---------------------------------------------------------------- in-process paths


def _one_thread(fn: Callable[[], Any]) -> Any:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def _max_diff(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def _pipeline_proba(outputs: list[Any], label2id: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pipeline outputs (raw scores per label) -> the engine's (role softmax, flag sigmoid) probabilities."""
    from jdlens.model import split_logits

    return split_logits(_pipeline_logits(outputs, label2id))


def _pipeline_logits(outputs: list[Any], label2id: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(outputs), len(label2id)), dtype=np.float32)
    for i, scores in enumerate(outputs):
        for s in scores:
            out[i, label2id[s["label"]]] = s["score"]
    return out


def make_pipeline(folder: Path) -> Any:
    from transformers import pipeline

    return pipeline("text-classification", model=str(folder), top_k=None, function_to_apply="none", device=-1)


def onnx_folder(folder: Path, scratch: Path, log: Callable[[str], None]) -> Path:
    """`folder` if it has both ONNX graphs, else a scratch copy with them exported (the model folder itself is
    never written by the benchmark)."""
    import shutil

    from jdlens.onnx_model import export_onnx, graph_path

    if graph_path(folder, "fp32").is_file() and graph_path(folder, "int8").is_file():
        return folder
    copy = scratch / "model"
    shutil.copytree(folder, copy)
    log("exporting the ONNX graphs into a scratch copy of the model folder")
    export_onnx(copy)
    return copy


def accuracy_by_split(
    predictors: dict[str, Any], root: Path, per_split: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Role macro-F1 of every path on every evaluation split (jdlens.backends.evaluation_splits: the test
    sentences and the gold sentences of the test/dev/realistic_dev/realistic_test JDs), and each path's
    loss against torch fp32 in points: per split and the worst split."""
    from jdlens.backends import evaluation_splits
    from jdlens.evaluate import sentence_metrics
    from jdlens.model import sentence_predictions

    splits = evaluation_splits(root)
    if per_split:
        splits = {k: v[:: max(1, len(v) // per_split)][:per_split] for k, v in splits.items()}
    texts = list(dict.fromkeys(s["text"] for rows in splits.values() for s in rows))
    index = {t: i for i, t in enumerate(texts)}
    f1: dict[str, dict[str, float]] = {}
    for name, predictor in predictors.items():
        role_p, flag_p = predictor.predict_proba(texts)
        f1[name] = {}
        for split, rows in splits.items():
            at = [index[s["text"]] for s in rows]
            preds = sentence_predictions([s["text"] for s in rows], role_p[at], flag_p[at], predictor.flag_thresholds)
            f1[name][split] = sentence_metrics(rows, preds)["role_macro_f1"]
        log(f"accuracy: {name} {f1[name]}")
    ref = f1["torch_fp32"]
    drops = {n: {s: round((ref[s] - v[s]) * 100, 2) for s in ref} for n, v in f1.items()}
    return {
        "splits": {k: len(v) for k, v in splits.items()},
        "role_macro_f1": f1,
        "drop_points": drops,
        "worst_drop_points": {n: max(d.values()) for n, d in drops.items()},
    }


def measure_in_process(
    folder: Path, records: list[dict[str, Any]], settings: Settings, log: Callable[[str], None], root: Path
) -> dict[str, Any]:
    """Pipeline (one at a time, batched), torch fp32 (and bf16 where the CPU has it), ONNX Runtime fp32 and
    int8, and the matmul probe: warmed up, then run interleaved for `repeats` rounds so that load drifts hit
    every path alike; medians reported. Then every path's accuracy on every split."""
    import torch

    from jdlens.backends import bf16_supported
    from jdlens.model import JDLensClassifier
    from jdlens.onnx_model import OnnxClassifier

    texts = [r["text"] for r in records]
    fp32 = JDLensClassifier.load(folder)
    bf16 = JDLensClassifier.load(folder, quantize="bf16") if bf16_supported() else None
    scratch = tempfile.TemporaryDirectory(prefix="jdlens-bench-onnx-")
    graphs = onnx_folder(folder, Path(scratch.name), log)
    ort32 = OnnxClassifier.load(graphs, "fp32")
    ort8 = OnnxClassifier.load(graphs, "int8")
    for clf in (fp32, bf16, ort32, ort8):
        if clf is not None:
            clf.batch_size = settings.batch_size
    tok_kw = {"truncation": True, "max_length": fp32.max_length}  # the same work as the engine
    pipe = make_pipeline(folder)
    bs = settings.batch_size

    tokens = token_stats(fp32.tokenizer, texts, fp32.max_length, bs)
    flops = model_flops(fp32.model, tokens["mean_tokens"])
    probe = MatmulProbe(flops["hidden"], flops["intermediate"], round(tokens["mean_tokens"]), bs, settings.matmul_s)

    results: dict[str, Any] = {}

    label2id = fp32.model.config.label2id

    # The engine removes markdown syntax before tokenising (jdlens.markdown_text); the pipeline gets the same
    # cleaned text, so both do the same work and their probabilities can be compared.
    from jdlens.markdown_text import clean_markdown

    clean = [clean_markdown(t) for t in texts]

    def pipe_single() -> list[Any]:
        return [pipe(t, **tok_kw)[0] for t in clean]

    def pipe_batched() -> list[Any]:
        return pipe(clean, batch_size=bs, **tok_kw)

    paths: dict[str, Callable[[], Any]] = {
        "pipeline_single": pipe_single,
        "pipeline_batched": pipe_batched,
        "engine_fp32": lambda: fp32.predict_proba(texts),
        **({"torch_bf16": lambda: bf16.predict_proba(texts)} if bf16 is not None else {}),
        "onnx_fp32": lambda: ort32.predict_proba(texts),
        "onnx_int8": lambda: ort8.predict_proba(texts),
        "matmul": probe.run,
        "matmul_1thread": lambda: _one_thread(probe.run),
    }
    times: dict[str, list[float]] = {k: [] for k in paths}
    with torch.inference_mode():
        log("warming up every path")
        warm = texts[: min(len(texts), 2 * bs)]
        for t in warm[:4]:
            pipe(t, **tok_kw)
        pipe(warm, batch_size=bs, **tok_kw)
        for clf in (fp32, bf16, ort32, ort8):
            if clf is not None:
                clf.predict_proba(warm)
        probe.warm_up()
        _one_thread(probe.one_pass)
        for r in range(settings.repeats):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                results[name] = fn()
                times[name].append(time.perf_counter() - t0)
                log(f"repeat {r + 1}/{settings.repeats}: {name} {times[name][-1]:.2f}s")

    n = len(texts)

    def rate(name: str) -> dict[str, Any]:
        med = statistics.median(times[name])
        return {
            "sentences_per_s": n / med,
            "seconds_median": med,
            "seconds_all": [round(t, 4) for t in times[name]],
            "repeats": len(times[name]),
        }

    single, batched, eng, o32, q8 = (
        rate(k) for k in ("pipeline_single", "pipeline_batched", "engine_fp32", "onnx_fp32", "onnx_int8")
    )
    b16 = rate("torch_bf16") if bf16 is not None else {"skipped": "the CPU has neither AVX512_BF16 nor AMX"}
    single["how"] = "transformers.pipeline('text-classification', top_k=None, function_to_apply='none', device=-1)"
    batched["how"] = single["how"] + f", batch_size={bs}"
    batched["batch_size"] = bs
    eng["how"] = f"JDLensClassifier.predict_proba, batch {bs}, length-sorted, dynamic padding"
    eng["batch_size"] = bs
    eng["vs_pipeline_single"] = eng["sentences_per_s"] / single["sentences_per_s"]
    eng["vs_pipeline_batched"] = eng["sentences_per_s"] / batched["sentences_per_s"]
    # The engine and the pipeline run the same weights on the same inputs: their probabilities must agree.
    eng["max_abs_prob_diff_vs_pipeline"] = max(
        _max_diff(results["engine_fp32"], _pipeline_proba(results[k], label2id))
        for k in ("pipeline_single", "pipeline_batched")
    )

    gflops = probe.flops_per_pass * probe.passes / statistics.median(times["matmul"]) / 1e9
    gflops_1t = probe.flops_per_pass * probe.passes / statistics.median(times["matmul_1thread"]) / 1e9
    floor = gflops / flops["gflop_per_sentence"]
    flops.update(
        {
            "matmul_gflop_per_s": gflops,
            "matmul_shapes": probe.shape,
            "matmul_seconds_all": [round(t, 4) for t in times["matmul"]],
            "matmul_threads": torch.get_num_threads(),
            "matmul_gflop_per_s_1thread": gflops_1t,  # a diagnostic: below this, threads are contending
            "floor_sentences_per_s": floor,
            "engine_fraction_of_floor": eng["sentences_per_s"] / floor,
            "onnx_fp32_fraction_of_floor": o32["sentences_per_s"] / floor,
            "int8_fraction_of_fp32_floor": q8["sentences_per_s"] / floor,
        }
    )

    o32.update(
        {
            "how": "OnnxClassifier(onnx/model.fp32.onnx): torch.onnx.export opset 17, ORT BERT fusion, ORT_ENABLE_ALL",
            "vs_torch_fp32": o32["sentences_per_s"] / eng["sentences_per_s"],
            "max_abs_prob_diff_vs_torch_fp32": _max_diff(results["onnx_fp32"], results["engine_fp32"]),
        }
    )
    if bf16 is not None:
        b16.update(
            {
                "how": "JDLensClassifier under torch.autocast('cpu', bfloat16)",
                "vs_torch_fp32": b16["sentences_per_s"] / eng["sentences_per_s"],
                "max_abs_prob_diff_vs_torch_fp32": _max_diff(results["torch_bf16"], results["engine_fp32"]),
            }
        )
    log("accuracy of every path on every split")
    predictors = {"torch_fp32": fp32, "onnx_fp32": ort32, "onnx_int8": ort8} | (
        {"torch_bf16": bf16} if bf16 is not None else {}
    )
    # One torch thread: accuracy does not depend on it, and on a shared machine two spinning threads per
    # process made torch (bf16 above all) many times slower.
    accuracy = _one_thread(lambda: accuracy_by_split(predictors, root, settings.split_sentences, log))
    q8.update(
        {
            "how": "OnnxClassifier(onnx/model.int8.onnx): ORT quantize_dynamic, QInt8 per-channel, MatMul + "
            "Attention, pooler and head fp32",
            "vs_fp32": q8["sentences_per_s"] / o32["sentences_per_s"],
            "vs_torch_fp32": q8["sentences_per_s"] / eng["sentences_per_s"],
            "role_macro_f1_torch_fp32": accuracy["role_macro_f1"]["torch_fp32"],
            "role_macro_f1_int8": accuracy["role_macro_f1"]["onnx_int8"],
            "drop_points": accuracy["drop_points"]["onnx_int8"],
            "worst_drop_points": accuracy["worst_drop_points"]["onnx_int8"],
            "max_abs_prob_diff_vs_fp32": _max_diff(results["onnx_int8"], results["onnx_fp32"]),
        }
    )
    scratch.cleanup()
    model_desc = {
        "class": type(fp32.model).__name__,
        "dtype": str(next(fp32.model.parameters()).dtype),
        "pipeline_dtype": str(next(pipe.model.parameters()).dtype),
        "max_length": fp32.max_length,
        "params": flops["params_total"],
    }
    return {
        "model_desc": model_desc,
        "tokens": tokens,
        "pipeline_single": single,
        "pipeline_batched": batched,
        "engine_fp32": eng,
        "torch_bf16": b16,
        "onnx_fp32": o32,
        "flop_floor": flops,
        "int8": q8,
        "accuracy": accuracy,
    }


# ---------------------------------------------------------------- the HTTP service


def jd_bodies(texts: list[str], per_jd: int) -> list[dict[str, str]]:
    """~per_jd-sentence JDs made of the benchmark sentences as bullets (so the service scores the same
    kind of sentences as the engine); cycles through the sentences when there are fewer than per_jd."""
    n_jds = max(1, -(-len(texts) // per_jd))
    bodies = []
    for k in range(n_jds):
        lines = [texts[(k * per_jd + j) % len(texts)] for j in range(per_jd)]
        # Bullets only, no heading: the server scores headings too, and they would skew the sentence mix.
        bodies.append({"id": f"bench-{k}", "text": "".join(f"- {t}\n" for t in lines)})
    return bodies


def serve_command(folder: Path, port: int) -> list[str]:
    # This checkout's code (running_server puts it on PYTHONPATH), not whichever `jdlens` script is installed.
    head = [sys.executable, "-c", "from jdlens.cli import main; main()"]
    return [*head, "serve", "--model", str(folder), "--port", str(port), "--host", "127.0.0.1"]


@contextlib.contextmanager
def running_server(folder: Path, root: Path, start_timeout_s: float, log: Callable[[str], None]) -> Any:
    """`jdlens serve` on a free loopback port in a subprocess; yields (base_url, command); always terminated."""

    port = free_port()
    cmd = serve_command(folder, port)
    with tempfile.TemporaryDirectory(prefix="jdlens-bench-") as state:
        env = dict(os.environ)
        env.update(
            {
                "JDLENS_API_KEY": "bench",
                "JDLENS_HOME": str(root),
                "JDLENS_STATE": state,
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            }
        )
        logfile = Path(state) / "server.log"
        log(f"starting: {' '.join(cmd)}")
        url = f"http://127.0.0.1:{port}"
        with running(cmd, f"{url}/ping", logfile, env=env, cwd=root, timeout=start_timeout_s, name="jdlens serve"):
            yield url, cmd


async def load_level(
    url: str, bodies: list[dict[str, str]], concurrency: int, count: int, time_s: float, timeout_s: float
) -> dict[str, Any]:
    """`count` POST /v1/score requests from `concurrency` workers; no request starts after `time_s`."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    state = {"next": 0, "sentences": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        start = time.perf_counter()
        stop_at = start + time_s

        async def worker() -> None:
            while state["next"] < count and time.perf_counter() < stop_at:
                body = bodies[state["next"] % len(bodies)]
                state["next"] += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/score", json=body)
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                    state["sentences"] += len(r.json()["sentences"])
                else:
                    errors.append(f"HTTP {r.status_code}: {r.text[:200]}")

        try:
            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), time_s + timeout_s + 10)
        except TimeoutError:
            errors.append(f"the level ran past its hard bound of {time_s + timeout_s + 10:.0f}s and was cancelled")
        wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000 if latencies else np.array([0.0])
    return {
        "concurrency": concurrency,
        "requests_sent": state["next"],
        "requests_ok": len(latencies),
        "errors": len(errors),
        "error_examples": errors[:5],
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "sentences_per_s": state["sentences"] / wall,
        "sentences_per_request": state["sentences"] / max(1, len(latencies)),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
        "hit_time_limit": state["next"] < count,
    }


def measure_service(
    folder: Path, root: Path, texts: list[str], settings: Settings, log: Callable[[str], None]
) -> dict[str, Any]:
    import httpx

    bodies = jd_bodies(texts, settings.jd_sentences)
    levels = []
    with running_server(folder, root, settings.server_start_s, log) as (url, cmd):
        described = httpx.get(f"{url}/models/jdlens", timeout=10).json()[0]
        log("warming up the service")
        asyncio.run(load_level(url, bodies, 1, 2, settings.level_time_s, settings.request_timeout_s))
        for c, n in zip(settings.concurrency, settings.requests, strict=True):
            level = asyncio.run(load_level(url, bodies, c, n, settings.level_time_s, settings.request_timeout_s))
            log(
                f"concurrency {c}: {level['requests_ok']}/{n} ok, {level['errors']} errors, "
                f"{level['sentences_per_s']:.1f} sentences/s"
            )
            levels.append(level)
    return {
        "command": " ".join(cmd),
        "route": "POST /v1/score",
        "jd_sentences": settings.jd_sentences,
        "distinct_jds": len(bodies),
        "server_batch_size": described.get("batchSize"),
        "server_max_batch_delay_ms": described.get("maxBatchDelay"),
        "backend": (described.get("backend") or {}).get("backend", ""),
        "backend_reason": (described.get("backend") or {}).get("reason", ""),
        "levels": levels,
        "errors": sum(x["errors"] for x in levels),
    }


# ---------------------------------------------------------------- the run


def run_benchmark(
    model: str, settings: Settings, root: Path | None = None, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    from jdlens.paths import offline_by_default

    offline_by_default()
    log = log or (lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True))
    root = root or default_root()
    folder, version = resolve_model(model)
    records = load_sentences(root, settings.sentences)
    result: dict[str, Any] = {"machine": machine_info()}
    log(f"{len(records)} sentences, model {folder}")
    measured = measure_in_process(folder, records, settings, log, root)
    result["model"] = {"spec": model, "folder": str(folder), "version": version, **measured.pop("model_desc")}
    result["data"] = {"source": "data/sentences/test.jsonl", "sentences": len(records), **measured.pop("tokens")}
    result.update(measured)
    gc.collect()
    if settings.service:
        try:
            svc = measure_service(folder, root, [r["text"] for r in records], settings, log)
        except (OSError, RuntimeError, TimeoutError, ValueError, KeyError) as exc:
            # Keep the in-process figures: report the failure instead of losing the whole run.
            log(f"the service benchmark failed: {exc}")
            svc = {"failed": f"{type(exc).__name__}: {exc}", "levels": [], "errors": 1}
        else:
            top = max(svc["levels"], key=lambda x: x["concurrency"])
            svc["top_concurrency"] = top["concurrency"]
            # Against the same backend in process: the one the server chose (GET /models/jdlens).
            path = {"onnx-fp32": "onnx_fp32", "onnx-int8": "int8"}.get(svc.get("backend", ""), "engine_fp32")
            svc["engine_path"] = path
            svc["vs_engine_at_top_concurrency"] = top["sentences_per_s"] / result[path]["sentences_per_s"]
        result["service"] = svc
    result["machine"]["load_avg_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    result["settings"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
    result["targets"] = check_targets(result)
    return _plain(result)


def check_targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    eng, q8 = r["engine_fp32"], r["int8"]
    rows = [
        (
            "engine fp32 vs pipeline one-at-a-time",
            eng["vs_pipeline_single"],
            ">=",
            TARGETS["engine_vs_pipeline_single"],
        ),
        ("engine fp32 vs pipeline batched", eng["vs_pipeline_batched"], ">=", TARGETS["engine_vs_pipeline_batched"]),
        (
            "ONNX fp32 fraction of the FLOP floor",
            r["flop_floor"]["onnx_fp32_fraction_of_floor"],
            ">=",
            TARGETS["onnx_fp32_fraction_of_floor"],
        ),
        ("int8 vs fp32 throughput", q8["vs_fp32"], ">=", TARGETS["int8_vs_fp32"]),
        (
            "int8 macro-F1 minus fp32, worst split (points)",
            -q8["worst_drop_points"],
            ">=",
            -TARGETS["int8_f1_drop_points"],
        ),
    ]
    svc = r.get("service")
    if svc:
        if not svc.get("failed"):
            ratio = svc["vs_engine_at_top_concurrency"]
            rows.append(("service vs engine (sentences/s)", ratio, ">=", TARGETS["service_vs_engine"]))
        rows.append(("service errors", svc["errors"], "==", 0))
    out = []
    for name, value, op, target in rows:
        met = value >= target if op == ">=" else value == target
        out.append({"name": name, "value": value, "target": f"{op} {target}", "met": bool(met)})
    return out


def _plain(obj: Any) -> Any:
    """numpy scalars -> Python numbers, floats rounded for the JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return round(obj, 4) if abs(obj) >= 1e-3 else float(f"{obj:.4g}")
    return obj


# ---------------------------------------------------------------- the report


def format_table(r: dict[str, Any]) -> str:
    m, d, mod = r["machine"], r["data"], r["model"]
    single, batched, eng, fl, q8, o32, b16 = (
        r["pipeline_single"],
        r["pipeline_batched"],
        r["engine_fp32"],
        r["flop_floor"],
        r["int8"],
        r["onnx_fp32"],
        r["torch_bf16"],
    )
    met = {t["name"]: ("yes" if t["met"] else "**no**") for t in r["targets"]}
    lines = [
        f"## jdlens CPU inference benchmark, {m['date_utc']}",
        "",
        f"- machine: {m['cpu'] or 'unknown CPU'}; {m['cores']} cores ({m['usable_cores']} usable), "
        f"torch {m['torch']} with {m['torch_threads']} threads, transformers {m['transformers']}, "
        f"Python {m['python']}; load average {m['load_avg_start']} at start, {m['load_avg_end']} at end",
        f"- model: {mod['spec']} ({mod['class']}, {fl['layers']} layers, hidden {fl['hidden']}, "
        f"feed-forward {fl['intermediate']}, {mod['params'] / 1e6:.1f}M params, {mod['dtype']}, "
        f"max_length {mod['max_length']}{', version ' + mod['version'] if mod['version'] else ''})",
        f"- sentences: {d['sentences']} from {d['source']}, mean {d['mean_tokens']:.1f} tokens "
        f"(with [CLS]/[SEP]; {d['min_tokens']}-{d['max_tokens']}); padded tokens per sentence: engine "
        f"{d['padded_tokens_per_sentence_engine']:.1f}, pipeline batched {d['padded_tokens_per_sentence_pipeline_batched']:.1f}",
        f"- in-process: median of {eng['repeats']} interleaved repeat(s), after a warm-up, under torch.inference_mode",
        "",
        "| measure | throughput | ratio | target | met |",
        "|---|---:|---:|---:|:---:|",
        f"| HF pipeline, one sentence at a time | {single['sentences_per_s']:.1f} sent/s | 1.00 | | |",
        f"| HF pipeline, batch_size={batched['batch_size']} | {batched['sentences_per_s']:.1f} sent/s | "
        f"{batched['sentences_per_s'] / single['sentences_per_s']:.2f} vs one-at-a-time | | |",
        f"| jdlens engine fp32 (batch {eng['batch_size']}, length-sorted) vs one-at-a-time | "
        f"{eng['sentences_per_s']:.1f} sent/s | {eng['vs_pipeline_single']:.2f}x | >= {TARGETS['engine_vs_pipeline_single']}x | "
        f"{met['engine fp32 vs pipeline one-at-a-time']} |",
        f"| jdlens engine fp32 vs pipeline batched | | {eng['vs_pipeline_batched']:.2f}x | "
        f">= {TARGETS['engine_vs_pipeline_batched']}x | {met['engine fp32 vs pipeline batched']} |",
        f"| FLOP floor: {fl['matmul_gflop_per_s']:.1f} GFLOP/s fp32 matmul / {fl['gflop_per_sentence']:.3g} GFLOP per sentence | "
        f"{fl['floor_sentences_per_s']:.1f} sent/s | torch engine = {fl['engine_fraction_of_floor']:.2f} of floor | | |",
        f"| ONNX Runtime fp32 (fused graph, batch {eng['batch_size']}, length-sorted) | "
        f"{o32['sentences_per_s']:.1f} sent/s | {o32['vs_torch_fp32']:.2f}x torch fp32; "
        f"**{fl['onnx_fp32_fraction_of_floor']:.2f} of floor** | >= {TARGETS['onnx_fp32_fraction_of_floor']} of floor | "
        f"{met['ONNX fp32 fraction of the FLOP floor']} |",
    ]
    if "sentences_per_s" in b16:
        lines.append(
            f"| torch bf16 autocast | {b16['sentences_per_s']:.1f} sent/s | {b16['vs_torch_fp32']:.2f}x torch fp32 | | |"
        )
    else:
        lines.append(f"| torch bf16 autocast | skipped: {b16.get('skipped')} | | | |")
    lines += [
        f"| ONNX Runtime int8 vs ONNX fp32 | {q8['sentences_per_s']:.1f} sent/s | **{q8['vs_fp32']:.2f}x** "
        f"({q8['vs_torch_fp32']:.2f}x torch fp32) | >= {TARGETS['int8_vs_fp32']}x | {met['int8 vs fp32 throughput']} |",
        f"| int8 role macro-F1 loss vs torch fp32, worst split | | {q8['worst_drop_points']:.2f} points | "
        f"<= {TARGETS['int8_f1_drop_points']} | {met['int8 macro-F1 minus fp32, worst split (points)']} |",
    ]
    svc = r.get("service")
    if svc and svc.get("failed"):
        lines.append(f"| service | failed: {svc['failed'][:300]} | | no errors | **no** |")
    elif svc:
        top = max(svc["levels"], key=lambda x: x["concurrency"])
        lines.append(
            f"| service at concurrency {top['concurrency']} ({svc.get('backend') or 'torch'}) vs the same path in "
            f"process | {top['sentences_per_s']:.1f} sent/s | "
            f"{svc['vs_engine_at_top_concurrency']:.2f} | >= {TARGETS['service_vs_engine']}, no errors | "
            f"{met['service vs engine (sentences/s)']}, errors {svc['errors']} |"
        )
        lines += [
            "",
            f"Service: `{svc['route']}` with ~{svc['jd_sentences']}-sentence JDs (test sentences as bullets), "
            f"server batchSize {svc['server_batch_size']}, maxBatchDelay {svc['server_max_batch_delay_ms']} ms, "
            f"backend {svc.get('backend')} ({svc.get('backend_reason')}); "
            "the load generator shares the machine's cores with the server.",
            "",
            "| concurrency | requests ok/sent | errors | requests/s | sentences/s | p50 ms | p99 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for x in svc["levels"]:
            cut = " (time limit)" if x["hit_time_limit"] else ""
            lines.append(
                f"| {x['concurrency']} | {x['requests_ok']}/{x['requests_sent']}{cut} | {x['errors']} | "
                f"{x['requests_per_s']:.2f} | {x['sentences_per_s']:.1f} | {x['p50_ms']:.0f} | {x['p99_ms']:.0f} |"
            )
    acc = r["accuracy"]
    names = list(acc["role_macro_f1"])
    lines += [
        "",
        "Role macro-F1 on every split (points lost against torch fp32 in brackets):",
        "",
        "| split | sentences | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for split, n in acc["splits"].items():
        cells = [
            f"{acc['role_macro_f1'][k][split]:.4f}"
            + (f" ({acc['drop_points'][k][split]:+.2f})" if k != "torch_fp32" else "")
            for k in names
        ]
        lines.append(f"| {split} | {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"FLOPs: {fl['formula']}. Here T = {fl['tokens']:.1f}: {fl['gflop_matmul']:.3g} GFLOP in matmuls + "
        f"{fl['gflop_attention']:.3g} GFLOP in attention. Matmul GFLOP/s: torch.matmul fp32 on one layer's "
        f"shapes with N = {fl['matmul_shapes']['N']} tokens (batch {eng['batch_size']} x T), torch's default "
        f"{fl['matmul_threads']} threads (1 thread: {fl['matmul_gflop_per_s_1thread']:.1f} GFLOP/s).",
        f"Checks: engine vs pipeline max |probability diff| {eng['max_abs_prob_diff_vs_pipeline']:.2g}; "
        f"ONNX fp32 vs torch fp32 max |probability diff| {o32['max_abs_prob_diff_vs_torch_fp32']:.2g}; "
        f"ONNX int8 vs ONNX fp32 {q8['max_abs_prob_diff_vs_fp32']:.2g}.",
    ]
    lines += [f"Warning: {w}" for w in warnings(r)]
    return "\n".join(lines)


def warnings(r: dict[str, Any]) -> list[str]:
    out = []
    m = r["machine"]
    load = max(m.get("load_avg_start") or 0, m.get("load_avg_end") or 0)
    if load > 0.5 * max(1, m["usable_cores"]):
        out.append(
            f"the machine was busy (load average {load} on {m['usable_cores']} cores): absolute numbers are low "
            "and the ratios noisy; rerun on a quiet machine"
        )
    fl = r["flop_floor"]
    if fl["matmul_threads"] > 1 and fl["matmul_gflop_per_s"] < 1.2 * fl["matmul_gflop_per_s_1thread"]:
        out.append(
            f"fp32 matmul on {fl['matmul_threads']} threads ran at {fl['matmul_gflop_per_s']:.1f} GFLOP/s, "
            f"1 thread at {fl['matmul_gflop_per_s_1thread']:.1f}: the threads gain little or lose: "
            "either other work holds the cores (then every multi-threaded figure here is depressed) or the "
            "cores are hyperthread siblings"
        )
    if r["engine_fp32"]["max_abs_prob_diff_vs_pipeline"] > 1e-3:
        out.append("the engine's probabilities differ from the pipeline's by more than 1e-3: not the same model?")
    if r["data"]["sentences"] < 200:
        out.append(f"only {r['data']['sentences']} sentences: the macro-F1 figures are not the test-split numbers")
    if r.get("service", {}).get("failed"):
        out.append(f"the service benchmark failed: {r['service']['failed']}")
    if "service" in r and any(x["hit_time_limit"] for x in r["service"]["levels"]):
        out.append("a service level hit its time limit before sending all its requests")
    return out


# ---------------------------------------------------------------- command line


def _ints(value: str) -> tuple[int, ...]:
    return tuple(int(x) for x in value.split(",") if x.strip())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m serving.benchmark", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="champion", help="champion, models:/jdlens/N, or a model folder")
    ap.add_argument("--quick", action="store_true", help="48 sentences, 1 repeat, a few short requests (a smoke run)")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default .jdlens/benchmark.json)")
    ap.add_argument("--sentences", type=int, default=None, help="test sentences to use (default: all; --quick 48)")
    ap.add_argument("--repeats", type=int, default=None, help="in-process repeats (default 3; --quick 1)")
    ap.add_argument("--requests", type=_ints, default=None, help="requests per concurrency level, e.g. 40,80,160")
    ap.add_argument("--concurrency", type=_ints, default=None, help="concurrency levels (default 1,8,32)")
    ap.add_argument("--jd-sentences", type=int, default=None, help="sentences per JD sent to the service")
    ap.add_argument("--no-service", action="store_true", help="skip the HTTP service")
    args = ap.parse_args(argv)

    s = Settings.quick() if args.quick else Settings()
    for field, value in (
        ("sentences", args.sentences),
        ("repeats", args.repeats),
        ("requests", args.requests),
        ("concurrency", args.concurrency),
        ("jd_sentences", args.jd_sentences),
    ):
        if value is not None:
            setattr(s, field, value)
    s.service = not args.no_service
    if len(s.requests) != len(s.concurrency):
        ap.error("--requests needs one count per --concurrency level")
    if s.repeats < 1:
        ap.error("--repeats must be >= 1")

    try:
        result = run_benchmark(args.model, s)
    except (ValueError, LookupError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out
    if out is None:
        from jdlens.paths import state_dir

        out = state_dir() / "benchmark.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(format_table(result))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
