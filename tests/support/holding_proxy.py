"""An HTTP proxy in front of a real server that can hold requests: how a test puts a request
of the operator's in flight at a moment of its choosing (a slow trader API, as a network makes
one), without faking the server that answers.

Each GET is forwarded to ``upstream`` once ``hold(path)`` returns; ``hold`` runs in the
request's own thread, so it may block until the test has done what it races.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Forwarded:
    path: str
    started: float
    finished: float


@dataclass
class HoldingProxy:
    upstream: str
    hold: Callable[[str], None] = lambda path: None
    forwarded: list[Forwarded] = field(default_factory=list)
    url: str = ""

    def requests_to(self, prefix: str) -> list[Forwarded]:
        return [request for request in list(self.forwarded) if request.path.startswith(prefix)]


@contextmanager
def holding_proxy(upstream: str) -> Iterator[HoldingProxy]:
    proxy = HoldingProxy(upstream=upstream)
    client = httpx.Client(base_url=upstream, timeout=30)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            started = time.monotonic()
            proxy.hold(self.path)
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept")}
            response = client.get(self.path, headers=headers)
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)
            proxy.forwarded.append(Forwarded(self.path, started, time.monotonic()))

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test reads `forwarded`, not stderr

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="holding-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        client.close()
