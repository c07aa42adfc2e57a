"""VLLMBackend: unit tests against a fake server (run in CI) and parity tests against real vLLM (opt-in).

The `vllm`-marked tests need the venv from `serving/setup_vllm_cpu.sh` (VLLM_VENV or <repo>/.venv-vllm)
and are deselected by default; run them with `python -m pytest tests/test_vllm.py -m vllm -s`.
They export a real MiniLM classifier, serve it with `serving/start_vllm_cpu.sh` and check vLLM's
logits against `JDLensClassifier` on the same folder.

`test_jdlens_serve_with_vllm_backend_matches_local_engine` is the end-to-end check: train a small
model, `jdlens export` it, serve it with vLLM, run `jdlens serve --backend vllm` against that, and
compare the service's reports with the local engine's on the same exported folder.

Reuse: `start_vllm(folder)` is a context manager that serves any exported folder and yields a
`VLLMServer` (url, model, start seconds); the `vllm_server` fixture wraps it as a factory whose servers
are stopped at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from jdlens.labels import FLAGS
from jdlens.model import split_logits
from serving.launch import free_port, running
from serving.vllm_backend import VLLMBackend, VLLMError
from tests.conftest import tiny_overrides

REPO = Path(__file__).resolve().parent.parent
START_SCRIPT = REPO / "serving" / "start_vllm_cpu.sh"
URL = "http://vllm.test"

# ---------------------------------------------------------------------------------------------------
# Fake vLLM server (unit tests, no marker: these run in CI)
# ---------------------------------------------------------------------------------------------------


def fake_logits(text: str) -> list[float]:
    """Deterministic, text-dependent logits so a misordered row is detectable."""
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    return [float(x) for x in rng.normal(0, 3, size=8)]


class FakeVLLM:
    """Answers like vLLM 0.32: /v1/models, /health and /classify (results listed in reverse order, as a
    server is free to do, so the client must order by `index`)."""

    def __init__(self, model: str = "/models/jdlens", models: list[str] | None = None) -> None:
        self.model = model
        self.models = models if models is not None else [model]
        self.requests: list[httpx.Request] = []
        self.fail_with: int | None = None
        self.mangle: Callable[[dict], dict] | None = None

    def payloads(self, path: str = "/classify") -> list[dict]:
        return [json.loads(r.content) for r in self.requests if r.url.path == path]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/health":
            return httpx.Response(503 if self.fail_with else 200)
        if request.url.path == "/v1/models" and request.method == "GET":
            return httpx.Response(
                200, json={"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
            )
        if request.url.path == "/classify" and request.method == "POST":
            if self.fail_with:
                return httpx.Response(
                    self.fail_with,
                    json={
                        "error": {"message": "engine exploded", "type": "InternalServerError", "code": self.fail_with}
                    },
                )
            body = json.loads(request.content)
            if body.get("model") != self.model:
                msg = f"The model `{body.get('model')}` does not exist."
                return httpx.Response(404, json={"error": {"message": msg, "type": "NotFoundError", "code": 404}})
            if not body["input"]:
                return httpx.Response(
                    400, json={"error": {"message": "You must pass at least one prompt", "code": 400}}
                )
            data = [
                {"index": i, "label": "x", "probs": fake_logits(t), "num_classes": 8}
                for i, t in enumerate(body["input"])
            ]
            out = {"id": "classify-1", "object": "list", "model": self.model, "data": data[::-1]}
            return httpx.Response(200, json=self.mangle(out) if self.mangle else out)
        return httpx.Response(404, json={"detail": "Not Found"})


def fake_backend(server: FakeVLLM, **kwargs) -> VLLMBackend:
    return VLLMBackend(URL, transport=httpx.MockTransport(server), **kwargs)


TEXTS = [f"Sentence number {i} about machine learning." for i in range(10)]
EXPECTED = np.array([fake_logits(t) for t in TEXTS], dtype=np.float32)


def test_request_shape_and_model_discovery() -> None:
    server = FakeVLLM()
    backend = fake_backend(server)
    out = backend.logits(TEXTS[:3])
    assert out.shape == (3, 8) and out.dtype == np.float32
    assert [(r.method, r.url.path) for r in server.requests] == [("GET", "/v1/models"), ("POST", "/classify")]
    assert server.payloads() == [{"model": "/models/jdlens", "input": TEXTS[:3], "use_activation": False}]
    assert backend.model == "/models/jdlens"
    backend.logits(TEXTS[:1])  # model name is cached: no second /v1/models
    assert sum(r.url.path == "/v1/models" for r in server.requests) == 1


def test_given_model_and_max_length_are_sent() -> None:
    server = FakeVLLM(model="jd")
    backend = fake_backend(server, model="jd", max_length=128)
    backend.logits(TEXTS[:2])
    assert [r.url.path for r in server.requests] == ["/classify"]
    assert server.payloads()[0]["truncate_prompt_tokens"] == 128
    assert fake_backend(server, model="jd", meta={"max_length": 64}).max_length == 64


def test_results_come_back_in_input_order() -> None:
    out = fake_backend(FakeVLLM()).logits(TEXTS)
    np.testing.assert_allclose(out, EXPECTED, rtol=0, atol=1e-6)


def test_batching_splits_requests_and_keeps_order() -> None:
    server = FakeVLLM()
    out = fake_backend(server, batch_size=4).logits(TEXTS)
    assert [len(p["input"]) for p in server.payloads()] == [4, 4, 2]
    assert [t for p in server.payloads() for t in p["input"]] == TEXTS
    np.testing.assert_allclose(out, EXPECTED, rtol=0, atol=1e-6)


def test_async_matches_sync() -> None:
    server = FakeVLLM()
    backend = fake_backend(server, batch_size=3)

    async def run() -> np.ndarray:
        try:
            return await backend.alogits(TEXTS)
        finally:
            await backend.aclose()

    out = asyncio.run(run())
    np.testing.assert_allclose(out, EXPECTED, rtol=0, atol=1e-6)
    assert sorted(len(p["input"]) for p in server.payloads()) == [1, 3, 3, 3]


def test_predict_proba_splits_roles_and_flags() -> None:
    backend = fake_backend(FakeVLLM())
    roles, flags = backend.predict_proba(TEXTS)
    want_roles, want_flags = split_logits(EXPECTED)
    assert roles.shape == (10, 5) and flags.shape == (10, 3)
    np.testing.assert_allclose(roles.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(roles, want_roles, atol=1e-6)
    np.testing.assert_allclose(flags, want_flags, atol=1e-6)
    preds = backend.predict(TEXTS[:2])
    assert preds[0]["text"] == TEXTS[0] and tuple(preds[0]["flag_scores"]) == FLAGS


def test_empty_input_sends_nothing() -> None:
    server = FakeVLLM()
    assert fake_backend(server).logits([]).shape == (0, 8)
    assert server.requests == []


def test_server_error_raises_vllm_error_with_url_and_status() -> None:
    server = FakeVLLM()
    server.fail_with = 500
    with pytest.raises(VLLMError, match="engine exploded") as info:
        fake_backend(server, model="/models/jdlens").logits(TEXTS[:2])
    assert info.value.status == 500 and info.value.url == f"{URL}/classify"
    assert f"{URL}/classify (HTTP 500)" in str(info.value)


def test_wrong_model_name_is_a_clear_error() -> None:
    with pytest.raises(VLLMError, match="does not exist") as info:
        fake_backend(FakeVLLM(), model="other").logits(TEXTS[:1])
    assert info.value.status == 404


def test_ambiguous_model_list_asks_for_a_name() -> None:
    with pytest.raises(VLLMError, match="pass model="):
        fake_backend(FakeVLLM(models=["a", "b"])).logits(TEXTS[:1])


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: {**b, "data": b["data"][:-1]}, "expected 3 results"),
        (lambda b: {**b, "data": [{**d, "probs": d["probs"][:5]} for d in b["data"]]}, "has 5 scores, expected 8"),
        (lambda b: {**b, "data": [{**d, "index": 0} for d in b["data"]]}, "repeated result index"),
        (lambda b: {"unexpected": True}, "expected 3 results"),
    ],
)
def test_malformed_answers_raise(mangle: Callable[[dict], dict], message: str) -> None:
    server = FakeVLLM()
    server.mangle = mangle
    with pytest.raises(VLLMError, match=message):
        fake_backend(server).logits(TEXTS[:3])


def test_unreachable_server_raises_and_health_is_false() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    backend = VLLMBackend(URL, transport=httpx.MockTransport(refuse))
    with pytest.raises(VLLMError, match="is the server running") as info:
        backend.logits(TEXTS[:1])
    assert info.value.status is None and info.value.url == f"{URL}/v1/models"
    with pytest.raises(VLLMError, match="is the server running"):
        asyncio.run(VLLMBackend(URL, model="m", transport=httpx.MockTransport(refuse)).alogits(TEXTS[:1]))
    assert backend.health() is False


def test_health() -> None:
    server = FakeVLLM()
    assert fake_backend(server).health() is True
    server.fail_with = 503
    assert fake_backend(server).health() is False


def test_unreachable_real_port() -> None:
    """A real closed port (no mock): the error names the URL, not just an httpx traceback."""
    port = free_port()
    backend = VLLMBackend(f"http://127.0.0.1:{port}", model="m", timeout=2.0)
    with pytest.raises(VLLMError, match=f"127.0.0.1:{port}/classify"):
        backend.logits(["x"])
    assert backend.health() is False


@pytest.mark.parametrize(
    "url, error, message",
    [
        ("localhost:8000", ValueError, "give the vLLM server's base URL"),
        ("http://[::1", ValueError, "not a valid URL"),
        ("closed-port", ConnectionError, "does not answer /health"),
    ],
)
def test_vllm_predictor_rejects_bad_urls(tmp_path: Path, url: str, error: type, message: str) -> None:
    """What `jdlens serve --backend vllm` turns into `error: ...` and exit code 2 (never a traceback)."""
    from serving.server import vllm_predictor

    if url == "closed-port":
        url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(error, match=message):
        vllm_predictor(str(tmp_path), url)


# ---------------------------------------------------------------------------------------------------
# Real vLLM (opt-in: -m vllm)
# ---------------------------------------------------------------------------------------------------


def vllm_venv() -> Path | None:
    """The venv serving/setup_vllm_cpu.sh made, or None."""
    venv = Path(os.environ.get("VLLM_VENV", REPO / ".venv-vllm"))
    return venv if (venv / "bin" / "python").exists() else None


def require_vllm_venv() -> Path:
    venv = vllm_venv()
    if venv is None:
        where = os.environ.get("VLLM_VENV", str(REPO / ".venv-vllm"))
        pytest.skip(f"no vLLM venv at {where}: run `bash serving/setup_vllm_cpu.sh` (or set VLLM_VENV)")
    return venv


def export_tiny_classifier(folder: Path, head_scale: float = 50.0) -> Path:
    """A real MiniLM encoder with a fresh 8-way head (id2label = jdlens' labels), saved as safetensors.

    The fresh head is initialised with std 0.02, which gives logits of about +-0.02: a 1e-4 check on
    those would be a 0.5% tolerance. Scaling the head by `head_scale` gives logits of a few units, like
    a trained model's, so the parity check is meaningful.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from jdlens.labels import ID2LABEL, LABEL2ID
    from jdlens.paths import DEFAULT_BASE_MODEL, resolve_base_model

    base = resolve_base_model(DEFAULT_BASE_MODEL)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=8, id2label=ID2LABEL, label2id=LABEL2ID)
    with torch.no_grad():
        model.classifier.weight.mul_(head_scale)
        model.classifier.bias.normal_(0, 0.5)
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    (folder / "jdlens.json").write_text(json.dumps({"name": "tiny-vllm-test", "max_length": 128}))
    return folder


@dataclass
class VLLMServer:
    url: str
    model: str
    start_s: float
    log: Path


@contextlib.contextmanager
def start_vllm(folder: Path, port: int | None = None, timeout: float = 180.0) -> Iterator[VLLMServer]:
    """Serve `folder` with serving/start_vllm_cpu.sh on 127.0.0.1; yields once /health answers 200.

    The server runs in its own process group so stopping it also stops vLLM's engine processes; it is
    always stopped on exit, also when startup fails. Its log goes to <folder>/../vllm-<port>.log and
    its tail is in the error if it does not come up.
    """
    venv = require_vllm_venv()
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder.parent / f"vllm-{port}.log"
    env = os.environ | {"VLLM_VENV": str(venv)}
    cmd = ["bash", str(START_SCRIPT), str(folder), str(port)]
    with running(cmd, f"{url}/health", log, env=env, timeout=timeout, name="vLLM") as start_s:
        yield VLLMServer(url=url, model=str(folder), start_s=start_s, log=log)


@pytest.fixture(scope="module")
def vllm_server() -> Iterator[Callable[[Path], VLLMServer]]:
    """Factory fixture: `vllm_server(folder)` starts vLLM on the folder; all are stopped after the module."""
    stack = contextlib.ExitStack()

    def start(folder: Path, **kwargs) -> VLLMServer:
        return stack.enter_context(start_vllm(Path(folder), **kwargs))

    with stack:
        yield start


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_vllm_venv()
    return export_tiny_classifier(tmp_path_factory.mktemp("vllm") / "model")


@pytest.fixture(scope="module")
def served(exported_model: Path, vllm_server: Callable[[Path], VLLMServer]) -> VLLMServer:
    server = vllm_server(exported_model)
    print(f"\nvLLM start time: {server.start_s:.1f} s ({server.url})")
    return server


JD_SENTENCES = [
    "We are looking for a Machine Learning Engineer to join our growing AI team.",
    "You will build and deploy LLM-powered features into our customer-facing web application.",
    "A PhD in Computer Science, Statistics or a related field is required.",
    "Experience with PyTorch or TensorFlow and distributed training is a must.",
    "You will publish at top-tier venues such as NeurIPS, ICML and ICLR.",
    "Senior-ish candidates with several years of relevant experience preferred.",
    "Be a rockstar ninja who thrives in a fast-paced, disruptive, synergy-driven environment!",
    "Integrate OpenAI and Anthropic APIs into our React and Node.js stack.",
    "Design retrieval-augmented generation pipelines with vector databases.",
    "Own the model training, evaluation and monitoring lifecycle end to end.",
    "We offer competitive salary, equity, and unlimited PTO.",
    "Our office is located in downtown Berlin with flexible remote options.",
    "Collaborate with product managers and designers to ship AI features.",
    "Strong knowledge of Kubernetes, Docker and MLOps tooling such as Kubeflow.",
    "Conduct novel research on reinforcement learning from human feedback.",
    "Excellent communication skills and a team-player attitude.",
    "5+ years of backend engineering experience in Python or Go.",
    "Leverage cutting-edge generative AI to revolutionize the future of work.",
    "Equal opportunity employer.",
    "Fine-tune and quantize large language models for low-latency inference on GPUs.",
    # Over 128 tokens: checks that max_length truncation matches the tokenizer's.
    "Responsibilities include " + ", ".join(f"maintaining data pipeline number {i}" for i in range(40)) + ".",
]


@pytest.mark.vllm
def test_vllm_logits_match_local_model(served: VLLMServer, exported_model: Path) -> None:
    from jdlens.model import JDLensClassifier

    local = JDLensClassifier.load(exported_model)
    want = local.logits(JD_SENTENCES)
    backend = VLLMBackend(served.url, max_length=local.max_length, batch_size=8)
    assert backend.health()
    got = backend.logits(JD_SENTENCES)
    assert backend.model == str(exported_model)  # discovered from /v1/models
    diff = float(np.abs(got - want).max())
    print(f"\nmax abs logit diff vLLM vs JDLensClassifier: {diff:.3g} (logits span {want.min():.2f}..{want.max():.2f})")
    assert got.shape == (len(JD_SENTENCES), 8)
    assert diff < 1e-4

    got_async = asyncio.run(backend.alogits(JD_SENTENCES))
    assert float(np.abs(got_async - want).max()) < 1e-4

    roles, flags = backend.predict_proba(JD_SENTENCES)
    want_roles, want_flags = local.predict_proba(JD_SENTENCES)
    assert float(np.abs(roles - want_roles).max()) < 1e-4
    assert float(np.abs(flags - want_flags).max()) < 1e-4


@pytest.mark.vllm
def test_vllm_errors_are_clear(served: VLLMServer) -> None:
    with pytest.raises(VLLMError, match="does not exist") as info:
        VLLMBackend(served.url, model="not-served").logits(["x"])
    assert info.value.status == 404
    # Without truncation vLLM refuses over-long inputs instead of cutting them.
    with pytest.raises(VLLMError, match="maximum context length") as info:
        VLLMBackend(served.url).logits(["word " * 600])
    assert info.value.status == 400


# ---------------------------------------------------------------------------------------------------
# End to end: jdlens export -> vLLM -> jdlens serve --backend vllm (opt-in: -m vllm)
# ---------------------------------------------------------------------------------------------------

JDS = [
    """# Machine Learning Engineer, Fraud
Ledgerline is a payments company processing $4B a year for 20,000 online merchants.

## What you'll do
- Train and recalibrate gradient-boosted fraud models in XGBoost on our transaction history.
- Build feature pipelines in Spark that feed a real-time feature store.
- Deploy models behind a low-latency scoring service and monitor drift in production.

## Requirements
- PhD in Computer Science or Statistics required.
- 5+ years of experience.
- Experience with AI/ML technologies and cutting-edge solutions.

## Benefits
Competitive salary, equity and a yearly learning budget.""",
    """# Senior AI Engineer
We are an ambitious startup using AI to revolutionize the future of work!

Responsibilities:
* Integrate OpenAI and Anthropic APIs into our React and Node.js product.
* Design retrieval-augmented generation pipelines with vector databases.
* Publish novel research on reinforcement learning from human feedback at NeurIPS and ICML.
* Fine-tune and quantize large language models for low-latency GPU inference.
* Own Kubernetes clusters and MLOps tooling such as Kubeflow.

You are a rockstar ninja who thrives in a fast-paced, synergy-driven environment.
Senior-level candidates preferred.""",
    """# Research Scientist, Code Models
Forgepoint's research group trains the models behind an AI pair programmer used by 300,000 developers.

## What you'll work on
- Investigate new architectures for long-context code understanding.
- Design ablations on pretraining data mixtures and write up the results for publication.
- Study how models generalize to unseen programming languages.

## About you
- A PhD in machine learning or a related field, or equivalent research experience.
- A track record of first-author papers at ICLR, NeurIPS or ICML.

Nice to have: experience training models on more than 1,000 GPUs.""",
    """# LLM Application Engineer
Clausewise builds contract software for in-house legal teams.

You'll join the five-person Drafting squad that ships AI features inside Word and our web app.
We build on hosted foundation models; we do not train our own.
Day to day you will write prompts, evaluation harnesses and guardrails in TypeScript and Python.
You have shipped at least one LLM feature to paying customers and can explain how you measured it.
Responsibilities include """
    + ", ".join(f"maintaining evaluation suite number {i}" for i in range(30))
    + ".\nEqual opportunity employer.",
]


def _jdlens_cmd(*args: str) -> list[str]:
    """The `jdlens` entry point in this interpreter (`python -m jdlens.cli` would not see every command)."""
    return [sys.executable, "-c", "from jdlens.cli import main; main()", *args]


@contextlib.contextmanager
def start_jdlens_serve(
    model: Path, vllm_url: str, env: dict[str, str], log: Path, timeout: float = 120.0
) -> Iterator[str]:
    """`jdlens serve --backend vllm` in its own process group; yields its URL once /ping answers, always stops it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = _jdlens_cmd("serve", "--backend", "vllm", "--vllm-url", vllm_url, "--model", str(model), "--port", str(port))
    with running(cmd, f"{url}/ping", log, env=env, timeout=timeout, name="jdlens serve") as start_s:
        print(f"\njdlens serve (vllm backend) up in {start_s:.1f} s ({url})")
        yield url


def train_small_model(project: Path, folder: Path) -> Path:
    """A quickly trained LoRA model, merged and saved like the registry does (what `jdlens export` reads).

    MiniLM rather than the tests' 32-wide tiny encoder: vLLM's CPU attention only takes head sizes that
    are multiples of 32, and the tiny encoder's are 16. One short epoch gives logits of a few units.
    """
    from jdlens.config import load_config
    from jdlens.datastore import DataStore
    from jdlens.paths import DEFAULT_BASE_MODEL
    from jdlens.records import jd_gold_sentences
    from training.args import TrainingArguments
    from training.recipe import merge_for_export, train

    overrides = [*tiny_overrides(Path(DEFAULT_BASE_MODEL)), "epochs=1", "max_train_examples=160", "num_threads=2"]
    args = load_config(TrainingArguments, project / "configs/default.yaml", overrides)
    store = DataStore(project)
    result = train(args, store.train_records(), jd_gold_sentences(store.jds("dev")))
    merged = merge_for_export(result.classifier)
    merged.meta.update({"name": "jdlens-e2e", "version": "e2e-1"})
    merged.save(folder)
    return folder


def _compare_sentences(got: list[dict], want: list[dict], where: str) -> float:
    """Same texts, roles and flags; probabilities within 1e-4. Returns the largest probability difference."""
    assert len(got) == len(want), where
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        at = f"{where} sentence {i}"
        for key in ("text", "role", "flags", "index", "start", "end", "heading", "truncated_to_chars"):
            assert g.get(key) == w.get(key), f"{at}: {key} {g.get(key)!r} != {w.get(key)!r}"
        for key in ("role_scores", "flag_scores"):
            assert g[key].keys() == w[key].keys(), at
            worst = max(worst, *(abs(g[key][k] - w[key][k]) for k in w[key]))
    assert worst < 1e-4, f"{where}: max probability difference {worst:.3g}"
    return worst


def _compare_reports(got: dict, want: dict, where: str) -> float:
    for key in ("id", "role_type", "role_title", "role_shares", "score", "truncation", "salary_bands"):
        assert got.get(key) == want.get(key), f"{where}: {key} {got.get(key)!r} != {want.get(key)!r}"
    assert got["score_explanation"]["penalties"] == want["score_explanation"]["penalties"], where

    def mistakes(report: dict) -> list[tuple[str, list[int]]]:
        return [(m["type"], [e["index"] for e in m["evidence"]]) for m in report["mistakes"]]

    assert mistakes(got) == mistakes(want), where
    assert [e["index"] for e in got["concrete_seniority_evidence"]] == [
        e["index"] for e in want["concrete_seniority_evidence"]
    ], where
    return _compare_sentences(got["sentences"], want["sentences"], where)


@pytest.mark.vllm
def test_jdlens_serve_with_vllm_backend_matches_local_engine(project: Path, tmp_path: Path) -> None:
    require_vllm_venv()
    from jdlens.predictors import load_predictor
    from jdlens.report import load_report_config
    from serving.engine import Engine

    t0 = time.monotonic()
    trained = train_small_model(project, tmp_path / "trained")
    print(f"\ntrained in {time.monotonic() - t0:.1f} s")

    # 1. jdlens export -> a plain HF folder
    out = tmp_path / "export"
    env = os.environ | {
        "JDLENS_HOME": str(project),
        "JDLENS_STATE": str(tmp_path / "state"),
        "JDLENS_API_KEY": "k",
        "HF_HUB_OFFLINE": "1",
    }
    res = subprocess.run(
        _jdlens_cmd("export", str(out), "--format", "hf", "--model", str(trained)),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "exported to" in res.stdout and (out / "model.safetensors").exists()

    local = load_predictor(str(out))
    engine = Engine(local, load_report_config())
    span = local.logits([s for jd in JDS for s in jd.splitlines() if s.strip()])
    print(f"exported model's logits span {span.min():.2f}..{span.max():.2f}")
    assert span.max() - span.min() > 1.0  # a trained head, not near-zero logits

    # 2. vLLM on the exported folder, 3. jdlens serve --backend vllm against it
    # Both servers are stopped when the block ends, also on failure.
    worst = 0.0
    with contextlib.ExitStack() as stack:
        served = stack.enter_context(start_vllm(out))
        print(f"vLLM start time: {served.start_s:.1f} s ({served.url})")
        url = stack.enter_context(start_jdlens_serve(out, served.url, env, tmp_path / "jdlens-serve.log"))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=120.0))
        assert client.get("/ping").json() == {"status": "Healthy"}

        # GET /models/jdlens describes the model vLLM serves
        r = client.get("/models/jdlens")
        assert r.status_code == 200, r.text
        (desc,) = r.json()
        assert desc["modelName"] == "jdlens" and desc["modelVersion"] == "e2e-1"
        assert desc["loaded"] == "jdlens-e2e (vllm)"
        assert desc["flag_thresholds"] == local.flag_thresholds

        # POST /v1/score, one JD at a time
        for i, jd in enumerate(JDS):
            r = client.post("/v1/score", json={"text": jd, "id": f"jd-{i}"})
            assert r.status_code == 200, r.text
            got = r.json()
            assert got["model"]["version"] == "e2e-1"
            worst = max(worst, _compare_reports(got, engine.score(jd, jd_id=f"jd-{i}"), f"JD {i}"))

        # POST /v1/score:batch: the server's batcher mixes the JDs' sentences into shared vLLM requests
        r = client.post("/v1/score:batch", json={"jds": [{"text": jd, "id": f"jd-{i}"} for i, jd in enumerate(JDS)]})
        assert r.status_code == 200, r.text
        for i, (got, jd) in enumerate(zip(r.json()["reports"], JDS, strict=True)):
            worst = max(worst, _compare_reports(got, engine.score(jd, jd_id=f"jd-{i}"), f"batch JD {i}"))

        # POST /predictions/jdlens (TorchServe list) and /predictions/jdlens/<version> (KServe instances)
        want = engine.classify(JD_SENTENCES)
        for w in want:  # the service marks the sentences it cut for scoring (1000 chars by default)
            if len(w["text"]) > engine.limits.max_chars_per_sentence:
                w["truncated_to_chars"] = engine.limits.max_chars_per_sentence
        assert any("truncated_to_chars" in w for w in want)
        r = client.post("/predictions/jdlens", json=JD_SENTENCES)
        assert r.status_code == 200, r.text
        worst = max(worst, _compare_sentences(r.json(), want, "predictions"))
        r = client.post("/predictions/jdlens/e2e-1", json={"instances": JD_SENTENCES[:3]})
        assert r.status_code == 200, r.text
        worst = max(worst, _compare_sentences(r.json()["predictions"], want[:3], "kserve predictions"))
        assert client.post("/predictions/jdlens/99", json=JD_SENTENCES[:1]).status_code == 404

    n_sentences = sum(len(engine.prepare(jd).texts) for jd in JDS)
    print(
        f"{len(JDS)} JDs ({n_sentences} sentences) + {len(JD_SENTENCES)} sentences: jdlens serve --backend vllm "
        f"matches the local engine; max probability diff {worst:.3g}"
    )

    # 4. A vLLM URL that does not answer: a clear error and a non-zero exit, no traceback.
    for bad, message in [
        (f"http://127.0.0.1:{free_port()}", "does not answer /health"),
        ("http://[::1", "is not a valid URL"),
    ]:
        res = subprocess.run(
            _jdlens_cmd("serve", "--backend", "vllm", "--vllm-url", bad, "--model", str(out), "--port", "1"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode != 0, res.stdout
        assert "error: " in res.stderr and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr + res.stdout, res.stderr
