"""How a group commit gathers its batch: one rule for the order writer and the signal journal."""

from __future__ import annotations

import asyncio
from typing import TypeVar

GATHER_YIELDS = 4
"""Event-loop turns a batch waits for more commands, as long as each turn brings some."""

_T = TypeVar("_T")


async def gather(queue: asyncio.Queue[_T], batch: list[_T], *, max_batch: int) -> list[_T]:
    """``batch`` (its first command already taken) with what else is queued, up to
    ``max_batch``: a batch costs about the same to commit with one command or with many, so
    it lets requests already read from their sockets reach the queue, for as long as each
    event-loop turn brings more (at most ``GATHER_YIELDS`` turns)."""
    for _ in range(GATHER_YIELDS):
        while len(batch) < max_batch and not queue.empty():
            batch.append(queue.get_nowait())
        if len(batch) >= max_batch:
            break
        waiting = queue.qsize()
        await asyncio.sleep(0)
        if queue.qsize() == waiting:
            break
    while len(batch) < max_batch and not queue.empty():
        batch.append(queue.get_nowait())
    return batch
