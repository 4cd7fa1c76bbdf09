"""A minimal keep-alive HTTP/1.1 client for load generation.

The load generator shares the two cores with the server it measures. httpx spends a few
hundred microseconds of Python per request, which at thousands of requests per second
would take a core away from the server and make the server look slower than it is. This
client writes pre-encoded request bytes on a plain asyncio stream and reads the response
by its ``Content-Length``: tens of microseconds per request. It is for benchmarks only: no
chunked bodies, no redirects, no TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    """The server closed the connection or answered something this client cannot read."""


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, token: str):
        self.reader, self.writer = reader, writer
        self.host, self.token = host, token

    @classmethod
    async def open(cls, url: str, *, token: str) -> Connection:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}", token)

    def encode(self, method: str, path: str, body: Any = None) -> bytes:
        """The request bytes; encode once and send many times when the body repeats."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send encoded request bytes; return the status and the body."""
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            raise HttpError(f"connection closed: {error}") from error
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding":
                raise HttpError("chunked responses are not supported by this client")
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        return await self.send(self.encode(method, path, body))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
