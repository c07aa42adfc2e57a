"""Issue 8: the real server under a bounded hostile load (loopback), and a graceful SIGTERM drain.

Load: 64 concurrent clients send well-formed JDs while another sends the hostile requests of the issue
(quadratic bullets, a 900 kB sentence, lone surrogates, nested JSON, non-UTF-8, a 4 MB chunked upload,
unknown methods, a foreign Host, a cross-site Origin, oversized bodies) and a separate process probes
/ping. Bounded: 192 well-formed + 30 hostile requests, a few seconds on a free machine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from serving.hostile_load import peak_rss_mb, run_load
from serving.launch import free_port, stop
from tests.conftest import jdlens_server

pytestmark = pytest.mark.integration
MEMORY_BOUND_MB = 1500  # the tiny model's server peaks near 470 MB under this load


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "JDLENS_STATE": str(tmp_path / "state"), "JDLENS_API_KEY": "rk", "JDLENS_ADMIN_KEY": "ak"}


def test_hostile_load_gets_no_5xx_and_ping_stays_fast(tiny_model_dir: Path, tmp_path: Path) -> None:
    with jdlens_server(["--model", str(tiny_model_dir)], _env(tmp_path), tmp_path / "server.log", Path.cwd()) as base:
        out = asyncio.run(run_load(base, concurrency=64, requests=192, hostile_rounds=2))
        out["server_peak_rss_mb"] = peak_rss_mb(urlsplit(base).port)
    print(out)
    assert out["well_formed_5xx"] == [] and out["hostile_5xx"] == 0, out
    assert set(out["statuses"]) <= {"200", "503"} and out["503_without_retry_after"] == 0, out
    assert out["statuses"].get("200", 0) > 0, out  # admission lets work through, it does not refuse all
    assert all(s < 500 or s == 503 for s in out["hostile_statuses"]), out
    # /ping p99 under 200 ms (issue 8) on a machine that is not oversubscribed; a CI box shared with
    # other jobs can stall any process for longer than that, so there the bound is 1 s.
    busy = os.getloadavg()[0] > (os.cpu_count() or 1)
    assert out["ping_p99_ms"] < (1000 if busy else 200), out
    if out["server_peak_rss_mb"] is not None:
        assert out["server_peak_rss_mb"] < MEMORY_BOUND_MB, out


def test_sigterm_drains_in_flight_requests(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A request whose body is still arriving when SIGTERM comes is answered (200), then the server exits."""
    port = free_port()
    cmd = [sys.executable, "-c", "from jdlens.cli import main; main()", "serve", "--model", str(tiny_model_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(tmp_path), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.25)
        body = b'{"text": "We build fraud models. Train models with PyTorch."}'
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(
                b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            time.sleep(0.5)
            os.kill(proc.pid, signal.SIGTERM)  # in flight: headers and part of the body have arrived
            time.sleep(0.5)
            s.sendall(body[10:])
            answer = b""
            while b"\r\n\r\n" not in answer:
                got = s.recv(65536)
                if not got:
                    break
                answer += got
        assert answer.startswith(b"HTTP/1.1 200"), (answer[:300], log.read_text()[-2000:])
        # uvicorn re-raises the signal once it has drained, so the exit status says "ended by SIGTERM".
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM), log.read_text()[-2000:]
    finally:
        stop(proc)
