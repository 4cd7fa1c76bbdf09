"""Small helpers for tests that start real servers as local processes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it is true; raise ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@overload
async def observe(
    probe: Callable[[], Awaitable[T | None]], *, within: float, what: str, interval: float = 0.02
) -> T: ...
@overload
async def observe(
    probe: Callable[[], T | None], *, within: float, what: str, interval: float = 0.02
) -> T: ...
async def observe(
    probe: Callable[[], Any],
    *,
    within: float,
    what: str,
    interval: float = 0.02,
) -> T:
    """Call ``probe`` (a coroutine function, or a plain one for a fact of this process) until
    it returns something other than ``None`` (an observed fact, such as a field of
    ``/readyz``); that value. ``TimeoutError`` naming ``what`` otherwise.
    The one async poll of the test suite: facts a process reports only when asked."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        observed = await result if inspect.isawaitable(result) else result
        if observed is not None:
            return observed  # type: ignore[no-any-return]  # T, by the overloads
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def unprivileged_user() -> str | None:
    """The account to run servers as when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, but neither a 'postgres' nor a 'nobody' account exists")


def as_user(command: Sequence[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else list(command)


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
