"""A real HTTP server on loopback for the edges of the machine: the news sites a feed reads,
and the webhook receivers Apprise sends to. Each route answers with a handler; every
request is recorded (method, path, headers, body) for the test to assert on."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


Handler = Callable[[Request], Response]


class LocalHttpServer:
    def __init__(self, server: http.server.ThreadingHTTPServer) -> None:
        self._server = server
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def received(self, path: str, method: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path and method in (None, r.method)]

    def _answer(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            handler = self.routes.get(request.path.split("?", 1)[0])
        return handler(request) if handler else Response(404, b"no such route")


@contextmanager
def local_http_server() -> Iterator[LocalHttpServer]:
    """A server on a free loopback port for the duration of the block."""
    holder: list[LocalHttpServer] = []

    class _Handler(http.server.BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=self.path,
                headers={key.lower(): value for key, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            response = holder[0]._answer(request)
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        do_GET = do_POST = _handle  # noqa: N815 - the names http.server dispatches to

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the recorded requests are the log."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    holder.append(LocalHttpServer(server))
    thread = threading.Thread(target=server.serve_forever, name="local-http-server", daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
