"""VLLMBackend: unit tests against a fake server (run in CI) and parity tests against real vLLM (opt-in).

The `vllm`-marked tests need the venv from `serving/setup_vllm_cpu.sh` (VLLM_VENV or <repo>/.venv-vllm)
and are deselected by default; run them with `python -m pytest tests/test_vllm.py -m vllm -s`.
They export a real MiniLM classifier, serve it with `serving/start_vllm_cpu.sh` and check vLLM's
logits against `JDLensClassifier` on the same folder.

Reuse: `start_vllm(folder)` is a context manager that serves any exported folder and yields a
`VLLMServer` (url, model, start seconds); the `vllm_server` fixture wraps it as a factory whose servers
are stopped at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
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
from serving.vllm_backend import VLLMBackend, VLLMError

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def _stop(proc: subprocess.Popen) -> None:
    """TERM the server's process group (start script, API server, engine core, worker), KILL after 30 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    # Children can outlive the script; clean up whatever is left in the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


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
    t0 = time.monotonic()
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            ["bash", str(START_SCRIPT), str(folder), str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {proc.returncode} while starting; log tail:\n{_tail(log)}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"vLLM not healthy after {timeout:.0f} s; log tail:\n{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    break
            time.sleep(0.5)
        yield VLLMServer(url=url, model=str(folder), start_s=time.monotonic() - t0, log=log)
    finally:
        _stop(proc)


def _tail(log: Path, n: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else "(no log)"


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
