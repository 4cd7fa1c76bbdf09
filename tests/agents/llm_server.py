"""A local HTTP server that speaks the Vertex ``generateContent`` and OpenAI chat-completions
wire formats, so the providers' real clients are exercised over a real socket."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """What the server answers next: ``ok``, ``malformed``, ``off-schema``, ``429`` or ``slow``."""

    mode: str = "ok"
    answer: dict[str, Any] = field(default_factory=dict)
    delay: float = 1.0
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)


def _vertex_body(text: str) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 42, "candidatesTokenCount": 7, "totalTokenCount": 49},
        "modelVersion": "gemini-test",
    }


def _openai_body(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "grok-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
    }


@contextmanager
def serve(script: Script) -> Iterator[str]:
    """Run the server on a free port for the ``with`` block; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            script.requests.append((self.path, body, dict(self.headers)))
            vertex = self.path.endswith(":generateContent")
            if script.mode == "429":
                error = {"error": {"code": 429, "message": "quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
                return self._send(429, json.dumps(error))
            if script.mode == "slow":
                time.sleep(script.delay)
            text = json.dumps(script.answer)
            if script.mode == "malformed":
                text = '{"direction": "long", "strength": 0.5, '  # cut off mid-object
            elif script.mode == "off-schema":
                text = json.dumps({"direction": "sideways", "strength": 7})
            payload = _vertex_body(text) if vertex else _openai_body(text)
            # The client may have given up already (the timeout test).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._send(200, json.dumps(payload))

        def _send(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
