"""Inference backends of a model folder and the evidence for choosing among them.

Backends: `torch-fp32` (JDLensClassifier, the reference), `torch-bf16` (the same under bf16 autocast, on
CPUs with AVX512_BF16 or AMX), `onnx-fp32` and `onnx-int8` (`jdlens.onnx_model`, ONNX Runtime, no torch).

`measure_backends(folder, root)` exports the ONNX graphs and measures every backend's role macro-F1 on
every evaluation split (the sentence test split and the gold sentences of the test, dev, realistic_dev and
realistic_test JDs, as `jdlens eval` computes them), writing `onnx/backends.json`:

    {"reference": "torch-fp32", "limit_points": 0.5, "splits": {split: n},
     "backends": {backend: {"f1": {split: f1}, "drop_points": d, "meets_limit": bool, "sentences_per_s": x}}}

`drop_points` is the largest loss against torch fp32 over the splits, in points of macro-F1; a backend
meets the limit when it loses at most `ACCURACY_LIMIT_POINTS` on every split. int8 is only ever chosen
automatically with this evidence; fp32 ONNX computes the same function as torch fp32 and always qualifies.

Training writes it for every new version. For a folder without it (a version registered earlier: its
cached folder is `.jdlens/models/<store>/v<N>/model`):

    python -m jdlens.backends MODEL_FOLDER
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from jdlens.onnx_model import ONNX_DIR, graph_path

BACKENDS = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")
REFERENCE = "torch-fp32"
ACCURACY_LIMIT_POINTS = 0.5
BACKENDS_FILE = "backends.json"
# The JD splits whose gold sentences are scored, as `jdlens eval --split ...` reads them.
JD_SPLITS = ("test", "dev", "realistic_dev", "realistic_test")


def backends_path(folder: str | Path) -> Path:
    return Path(folder) / ONNX_DIR / BACKENDS_FILE


def read_backends(folder: str | Path) -> dict[str, Any] | None:
    """The folder's accuracy evidence, or None when there is none or it cannot be read."""
    try:
        info = json.loads(backends_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("backends"), dict) else None


def meets_limit(info: dict[str, Any] | None, backend: str) -> bool:
    """Whether `backend` may be chosen automatically: fp32 always; others only with recorded evidence."""
    if backend in ("torch-fp32", "onnx-fp32"):
        return True
    entry = ((info or {}).get("backends") or {}).get(backend)
    return bool(isinstance(entry, dict) and entry.get("meets_limit") is True)


def has_graph(folder: str | Path, precision: str) -> bool:
    return graph_path(folder, precision).is_file()


def bf16_supported() -> bool:
    """Whether torch bf16 is worth measuring and serving here (the same probe training uses)."""
    from jdlens.hardware import cpu_has_fast_bf16

    return cpu_has_fast_bf16()


def load_backend(folder: str | Path, backend: str, threads: int = 0) -> Any:
    """A predictor for `folder` on `backend` (see BACKENDS)."""
    if backend.startswith("onnx-"):
        from jdlens.onnx_model import OnnxClassifier

        return OnnxClassifier.load(folder, backend.removeprefix("onnx-"), threads=threads)
    if backend not in ("torch-fp32", "torch-bf16"):
        raise ValueError(f"unknown backend {backend!r} (use one of {', '.join(BACKENDS)})")
    from jdlens.model import JDLensClassifier

    clf = JDLensClassifier.load(folder, quantize="bf16" if backend == "torch-bf16" else None)
    clf.backend = backend
    return clf


def evaluation_splits(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Sentence records per split: `test` (data/sentences/test.jsonl) and `<split>_jds` (the gold
    sentences of data/jds/<split>.jsonl), the sets `jdlens eval` reports role macro-F1 on."""
    from jdlens.datastore import DataStore

    store = DataStore(root)
    out: dict[str, list[dict[str, Any]]] = {}
    if store.sentences("test"):
        out["test"] = store.sentences("test")
    for split in JD_SPLITS:
        gold = [s for jd in store.jds(split) for s in jd.get("sentences", [])]
        if gold:
            out[f"{split}_jds"] = gold
    return out


def reference_from_evaluation(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """torch fp32's role macro-F1 per evidence split (the names `evaluation_splits` gives) from
    `jdlens.evaluate.evaluate` results keyed by split: the sentence test split and each JD split's gold sentences."""
    out = {f"{name}_jds": r["jd_sentences"]["role_macro_f1"] for name, r in results.items() if "jd_sentences" in r}
    if "sentences" in results.get("test", {}):
        out["test"] = results["test"]["sentences"]["role_macro_f1"]
    return out


def measure_backends(
    folder: str | Path,
    root: Path,
    backends: tuple[str, ...] | None = None,
    log: Any = None,
    reference_f1: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Export the ONNX graphs (when missing) and write `onnx/backends.json` (see the module docstring).

    `reference_f1` ({split: role macro-F1} of torch fp32 on exactly these splits, e.g. from the training run's
    own evaluation of the same weights) saves scoring every sentence once more with torch fp32; it is used
    only when it names every split."""
    from jdlens.evaluate import sentence_metrics
    from jdlens.model import sentence_predictions
    from jdlens.onnx_model import export_fp32, export_int8

    folder = Path(folder)
    log = log or (lambda msg: None)
    if not has_graph(folder, "fp32"):
        log("exporting the fp32 ONNX graph")
        export_fp32(folder)
    if not has_graph(folder, "int8"):
        log("quantising the int8 ONNX graph")
        export_int8(folder)
    if backends is None:
        backends = tuple(b for b in BACKENDS if b != "torch-bf16" or bf16_supported())
    splits = evaluation_splits(root)
    texts = list(dict.fromkeys(s["text"] for rows in splits.values() for s in rows))
    result: dict[str, Any] = {
        "reference": REFERENCE,
        "limit_points": ACCURACY_LIMIT_POINTS,
        "splits": {k: len(v) for k, v in splits.items()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "backends": {},
    }
    if reference_f1 is not None and set(reference_f1) == set(splits):
        result["backends"][REFERENCE] = {"f1": dict(reference_f1), "from": "the training run's evaluation"}
    for backend in dict.fromkeys((REFERENCE, *backends)):
        if backend in result["backends"]:
            continue
        predictor = load_backend(folder, backend)
        predictor.predict_proba(texts[:32])  # warm-up (ORT and oneDNN plan on first use)
        start = time.perf_counter()
        role_p, flag_p = predictor.predict_proba(texts)
        seconds = time.perf_counter() - start
        index = {t: i for i, t in enumerate(texts)}
        f1 = {}
        for split, rows in splits.items():
            at = [index[s["text"]] for s in rows]
            preds = sentence_predictions([s["text"] for s in rows], role_p[at], flag_p[at], predictor.flag_thresholds)
            f1[split] = sentence_metrics(rows, preds)["role_macro_f1"]
        result["backends"][backend] = {"f1": f1, "sentences_per_s": round(len(texts) / seconds, 1)}
        log(f"{backend}: {len(texts) / seconds:.0f} sentences/s, role macro-F1 {f1}")
    ref = result["backends"][REFERENCE]["f1"]
    for entry in result["backends"].values():
        drop = max((ref[s] - entry["f1"][s]) * 100 for s in ref) if ref else 0.0
        entry["drop_points"] = round(drop, 2)
        entry["meets_limit"] = drop <= ACCURACY_LIMIT_POINTS
    path = backends_path(folder)
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from jdlens.config import repo_root

    ap = argparse.ArgumentParser(
        prog="python -m jdlens.backends", description="export ONNX graphs, write backends.json"
    )
    ap.add_argument("folder", type=Path, help="a jdlens model folder (model.safetensors, tokenizer.json, jdlens.json)")
    args = ap.parse_args(argv)
    if not (args.folder / "model.safetensors").is_file():
        print(f"error: {args.folder} has no model.safetensors", file=sys.stderr)
        return 2
    info = measure_backends(args.folder, repo_root(), log=lambda m: print(m, file=sys.stderr, flush=True))
    for name, entry in info["backends"].items():
        print(f"{name}: worst-split loss {entry['drop_points']} points, meets the limit: {entry['meets_limit']}")
    print(f"wrote {backends_path(args.folder)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
