"""The outermost ASGI layer of the service: who may talk to it, what every answer carries, what is counted.

- Host check (DNS rebinding): a page on an attacker's domain that resolves to 127.0.0.1 sends its own
  name in `Host`; only the configured names are served.
- Origin check (cross-site requests): browsers send `Origin` on cross-origin POSTs, including the
  "simple" `text/plain` ones a web page may send without a CORS preflight; a request whose Origin is
  not one of the allowed hosts is refused with 403. Clients that are not browsers send no Origin and
  are unaffected (TorchServe-style `text/plain` clients keep working).
- Body limit: a declared Content-Length over the limit is refused before the body is read; bodies
  without a length (chunked uploads) are counted while they are read by Starlette's
  RequestBodyLimitMiddleware, installed inside this layer.
- Security headers on every answer, and Prometheus counts with bounded labels for every answer,
  500s included: an unexpected exception becomes a JSON 500 with `Connection: close`, so a pooled
  client opens a fresh connection instead of reusing one the server is dropping.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import metrics

log = logging.getLogger("jdlens.serve")

# Methods outside this set are counted as "other": a client must not be able to create metric series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def host_name(value: str) -> str:
    """The host part of a Host header or an origin's netloc, lower-cased, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


async def send_json(send: Send, status: int, code: str, message: str, close: bool = False) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """See the module docstring. `csp` maps a path to its Content-Security-Policy (default: `default_csp`)."""

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: list[str],
        max_body_bytes: int,
        default_csp: str,
        csp: dict[str, str] | None = None,
    ) -> None:
        self.app = app
        self.allowed = {host_name(h) for h in allowed_hosts}
        self.any_host = "*" in allowed_hosts
        self.max_body_bytes = max_body_bytes
        self.default_csp = default_csp
        self.csp = csp or {}

    def _refusal(self, headers: Headers) -> tuple[int, str, str] | None:
        host = host_name(headers.get("host", ""))
        if not self.any_host and host not in self.allowed:
            return 400, "invalid_host", f"Host {host!r} is not served here (allowed_hosts in serve.yaml)"
        origin = headers.get("origin")
        if origin is not None:
            # Same origin means the same host *and port* (a page of another local server is another origin).
            o = urlsplit(origin)
            same = o.scheme in ("http", "https") and o.netloc.lower() == headers.get("host", "").strip().lower()
            if not same:
                return (
                    403,
                    "cross_origin",
                    "cross-origin requests are refused; call the API from its own page or a client",
                )
        length = headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_body_bytes:
            return 413, "body_too_large", f"request body is {length} bytes; the limit is {self.max_body_bytes}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        status = 500
        started = False
        csp = self.csp.get(scope["path"], self.default_csp)

        async def send_secured(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                h = MutableHeaders(scope=message)
                h.setdefault("x-content-type-options", "nosniff")
                h.setdefault("x-frame-options", "DENY")
                h.setdefault("referrer-policy", "no-referrer")
                h.setdefault("content-security-policy", csp)
                h.setdefault("cache-control", "no-store")
            await send(message)

        try:
            refusal = self._refusal(Headers(scope=scope))
            if refusal:
                await send_json(send_secured, *refusal)
            else:
                await self.app(scope, receive, send_secured)
        except Exception:
            log.exception("unhandled error on %s %s", method, scope["path"])
            if started:
                raise  # the answer is half sent: only dropping the connection is left
            await send_json(send_secured, 500, "internal_error", "the server failed; see its log", close=True)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            metrics.REQUESTS.labels(name, method, str(status)).inc()
            metrics.LATENCY.labels(name).observe(time.perf_counter() - start)
