"""Run a server as a subprocess until it is healthy, and always stop it: used by the serving benchmark
and by the tests that start `jdlens serve` or vLLM for real (loopback only)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, n: int = 3000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-n:] if path.exists() else ""


def stop(proc: subprocess.Popen) -> None:
    """TERM the process group (a start script's children too), KILL what is left after 30 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # children can outlive their parent
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(
    cmd: list[str],
    health_url: str,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
    name: str = "server",
) -> Iterator[float]:
    """Start `cmd` (output to `log`) in its own process group, wait until GET `health_url` answers 200,
    yield the seconds that took; the whole group is stopped on exit, whatever happened."""
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode} while starting:\n{log_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health_url, timeout=2.0).status_code == 200:
                    break
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{name} did not answer {health_url} within {timeout:.0f} s:\n{log_tail(log)}")
            time.sleep(0.25)
        yield time.monotonic() - t0
    finally:
        stop(proc)
