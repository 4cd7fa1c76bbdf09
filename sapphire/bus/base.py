"""The bus interface every implementation provides."""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Mapping, Sequence


class BusUnavailableError(RuntimeError):
    """The bus cannot be reached; callers answer 503 and write nothing."""


@dataclasses.dataclass(frozen=True)
class Message:
    channel: str
    data: str


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def get(self, wait_seconds: float) -> Message | None:
        """The next message, or ``None`` after ``wait_seconds`` without one."""


class Bus(abc.ABC):
    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`BusUnavailableError` unless the bus answers."""

    @abc.abstractmethod
    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """The values of ``keys``, ``None`` where a key is not set."""

    @abc.abstractmethod
    async def write(
        self, *, values: Mapping[str, str] | None = None, messages: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Set ``values`` and publish ``messages`` (channel, data) in one round trip, in order."""

    @abc.abstractmethod
    def subscribe(self, channels: Sequence[str]) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Listen to ``channels`` until the context exits."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def get(self, key: str) -> str | None:
        return (await self.get_many([key]))[0]

    async def publish(self, channel: str, data: str) -> None:
        await self.write(messages=[(channel, data)])
