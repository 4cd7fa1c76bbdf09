"""A minimal keep-alive HTTP/1.1 client for load generation.

The load generator shares the two cores with the server it measures. httpx spends a few
hundred microseconds of Python per request, which at thousands of requests per second
would take a core away from the server and make the server look slower than it is. This
client writes pre-encoded request bytes on a plain asyncio stream and reads the response
by its ``Content-Length``: tens of microseconds per request. It is for benchmarks only: no
chunked bodies, no redirects, no TLS.

:class:`Pool` drives N such connections concurrently through a list of pre-encoded requests
(each connection sends its next request once the previous answer is read) and records each
answer and its latency, from the write of the request to the last byte of the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class HttpError(RuntimeError):
    """The server closed the connection or answered something this client cannot read."""


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 80}"


def encode(host: str, token: str, method: str, path: str, body: Any = None) -> bytes:
    """The bytes of one request with a JSON body (``host`` is ``name:port``)."""
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


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
        return encode(self.host, self.token, method, path, body)

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


@dataclass(frozen=True)
class Answers:
    """What a :meth:`Pool.run` got back, in the order of its requests."""

    elapsed: float
    """Seconds from the first request written to the last answer read."""
    statuses: list[int]
    bodies: list[bytes]
    latencies_ns: list[int]

    def count(self, status: int) -> int:
        return sum(1 for s in self.statuses if s == status)

    def first_other(self, status: int) -> tuple[int, bytes] | None:
        """The first answer whose status is not ``status`` (a sample for error messages)."""
        for index, got in enumerate(self.statuses):
            if got != status:
                return got, self.bodies[index]
        return None


class Pool:
    """N keep-alive connections sharing one queue of requests, each one request at a time."""

    def __init__(self, connections: list[Connection]):
        self.connections = connections

    async def run(self, requests: Sequence[bytes]) -> Answers:
        total = len(requests)
        statuses, latencies = [0] * total, [0] * total
        bodies = [b""] * total
        counter = itertools.count()

        async def client(connection: Connection) -> None:
            while (index := next(counter)) < total:
                sent = time.perf_counter_ns()
                statuses[index], bodies[index] = await connection.send(requests[index])
                latencies[index] = time.perf_counter_ns() - sent

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in self.connections))
        return Answers(time.perf_counter() - started, statuses, bodies, latencies)


@contextlib.asynccontextmanager
async def pool(url: str, *, token: str, clients: int) -> AsyncIterator[Pool]:
    """``clients`` connections to ``url``, opened before and closed after the measured part."""
    connections: list[Connection] = []
    try:
        for _ in range(clients):
            connections.append(await Connection.open(url, token=token))
        yield Pool(connections)
    finally:
        for connection in connections:
            await connection.close()
