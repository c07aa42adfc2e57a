"""A bounded hostile load on a running jdlens server (loopback only): well-formed JD requests at a fixed
concurrency mixed with the hostile requests of issue 8, and a /ping probe throughout.

    python -m serving.hostile_load http://127.0.0.1:8080 --concurrency 64 --requests 256

Prints a JSON summary (requests, statuses, 5xx, 503s with/without Retry-After, /ping p50/p99, latency of
admitted well-formed requests). Used by tests/test_hostile_load.py and for RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

REPO = Path(__file__).resolve().parent.parent


def realistic_jds(n: int = 16) -> list[str]:
    path = REPO / "data/jds/realistic_dev.jsonl"
    if path.exists():
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        texts = [r["text"] for r in rows][:n]
        if texts:
            return texts
    return ["# ML Engineer\nWe build fraud models.\n## Requirements\n- Train models with PyTorch.\n- PhD in CS.\n"]


def _raw_chunked(base: str, path: str, total: int, chunk: int = 64_000) -> int:
    """POST a JSON body of `total` bytes with Transfer-Encoding: chunked (no Content-Length); the status."""
    u = urlsplit(base)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {u.hostname}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        )
        body = b'{"text": "' + b"Build models. " * (total // 14) + b'"}'
        try:
            for i in range(0, len(body), chunk):
                part = body[i : i + chunk]
                s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the upload ended: that is the point
        data = b""
        try:
            while b"\r\n" not in data:
                got = s.recv(4096)
                if not got:
                    break
                data += got
        except ConnectionResetError:
            pass
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


def hostile_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx kwargs) of each hostile request; expected answer: 4xx, never 5xx."""
    j = {"content-type": "application/json"}
    return [
        ("POST", "/v1/score", {"json": {"text": "- " * 450_000}}),  # quadratic marker stripping before
        ("POST", "/v1/score", {"json": {"text": "senior " * 130_000}}),  # one huge sentence (seniority regex)
        ("POST", "/v1/score", {"content": b'{"text": "Build \\ud800 models"}', "headers": j}),  # lone surrogate
        ("POST", "/predictions/jdlens", {"content": b'["ok", "bad \\udfff"]', "headers": j}),
        ("POST", "/predictions/jdlens", {"content": b"[" * 200_000, "headers": j}),  # nested JSON
        ("POST", "/v1/score", {"content": b"[" * 200_000, "headers": j}),
        ("POST", "/v1/score", {"content": b'{"text": "\xff\xfe"}', "headers": j}),  # not UTF-8
        ("POST", "/v1/feedback", {"content": b"[" * 200_000, "headers": j}),  # no key: refused before parsing
        ("POST", "/admin/reload", {"json": {"model": "/etc"}}),
        ("FROBNICATE", "/v1/score", {}),  # unknown method
        ("GET", "/ping", {"headers": {"host": "rebind.attacker.example"}}),  # DNS rebinding
        ("POST", "/predictions/jdlens", {"content": "Build RAG.", "headers": {"origin": "https://evil.example"}}),
        ("POST", "/v1/score:batch", {"json": {"jds": [{"text": "x y"}] * 40}}),  # too many JDs
        ("POST", "/v1/score", {"content": b"x" * 1_200_000, "headers": j}),  # declared length over the limit
    ]


def _ping_probe(base: str, stop: Any, results: Any) -> None:
    """GET /ping every 50 ms until `stop` is set; puts (latencies in s, non-200 statuses) on `results`."""
    lat: list[float] = []
    bad: list[int] = []
    with httpx.Client(base_url=base, timeout=30) as p:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = p.get("/ping")
            lat.append(time.perf_counter() - t0)
            if r.status_code != 200:
                bad.append(r.status_code)
            time.sleep(0.05)
    results.put((lat, bad))


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def run_load(base: str, concurrency: int = 64, requests: int = 256, hostile_rounds: int = 2) -> dict[str, Any]:
    jds = realistic_jds()
    statuses: dict[str, int] = {}
    fivexx: list[str] = []
    missing_retry_after = 0
    admitted_s: list[float] = []
    hostile_status: list[int] = []
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def worker(w: int) -> None:
            nonlocal missing_retry_after
            for i in counter:
                jd = jds[(w + i) % len(jds)]
                t0 = time.perf_counter()
                if i % 4 == 3:
                    lines = [x for x in jd.splitlines() if x.strip()][:32]
                    r = await client.post("/predictions/jdlens", json=lines)
                else:
                    r = await client.post("/v1/score", json={"text": jd})
                dt = time.perf_counter() - t0
                statuses[str(r.status_code)] = statuses.get(str(r.status_code), 0) + 1
                if r.status_code >= 500 and r.status_code != 503:
                    fivexx.append(f"{r.status_code} {r.text[:200]}")
                if r.status_code == 503:
                    if "retry-after" not in r.headers:
                        missing_retry_after += 1
                elif r.status_code == 200:
                    admitted_s.append(dt)

        async def hostile() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=60) as h:
                for _ in range(hostile_rounds):
                    for method, path, kw in hostile_requests():
                        r = await h.request(method, path, **kw)
                        hostile_status.append(r.status_code)
                    hostile_status.append(await asyncio.to_thread(_raw_chunked, base, "/v1/score", 4_000_000))

        # /ping is probed from its own process, so the load generator's own work does not count as latency.
        ctx = multiprocessing.get_context("spawn")
        stop, results = ctx.Event(), ctx.Queue()
        probe = ctx.Process(target=_ping_probe, args=(base, stop, results), daemon=True)
        probe.start()
        t0 = time.perf_counter()
        await asyncio.gather(hostile(), *(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
        stop.set()
        ping_s, bad_pings = await asyncio.to_thread(results.get, True, 60)
        probe.join(10)
        fivexx += [f"/ping {s}" for s in bad_pings]
    hostile_5xx = [s for s in hostile_status if s >= 500 and s != 503]
    return {
        "requests": requests,
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "statuses": statuses,
        "well_formed_5xx": fivexx,
        "503": statuses.get("503", 0),
        "503_without_retry_after": missing_retry_after,
        "admitted_p50_s": round(_pct(admitted_s, 0.5), 3),
        "admitted_p99_s": round(_pct(admitted_s, 0.99), 3),
        "hostile_requests": len(hostile_status),
        "hostile_statuses": sorted(set(hostile_status)),
        "hostile_5xx": len(hostile_5xx),
        "ping_count": len(ping_s),
        "ping_p50_ms": round(1000 * statistics.median(ping_s), 1) if ping_s else None,
        "ping_p99_ms": round(1000 * _pct(ping_s, 0.99), 1),
    }


def peak_rss_mb(port: int) -> float | None:
    """VmHWM (peak resident memory) of the process serving `port`, from /proc (Linux), in MB."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and b"--port" in args and str(port).encode() in args:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="the server's base URL (loopback)")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--hostile-rounds", type=int, default=2)
    a = ap.parse_args()
    host = urlsplit(a.base).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("hostile_load only runs against a loopback server")
    out = asyncio.run(run_load(a.base, a.concurrency, a.requests, a.hostile_rounds))
    out["server_peak_rss_mb"] = peak_rss_mb(urlsplit(a.base).port or 80)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
