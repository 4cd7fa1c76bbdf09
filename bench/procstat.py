"""CPU seconds of local processes, read from ``/proc/<pid>/stat``.

``utime + stime`` are the CPU a process has used itself; ``cutime + cstime`` the CPU of its
children that have exited and been reaped. The CPU of a process *tree* over an interval is
the difference of two readings of: its own four fields plus the four fields of each live
child. A child that exits in between is counted by its parent's ``cutime`` at the second
reading, so nothing is lost. Postgres is such a tree: the postmaster forks one backend per
connection plus its background workers, and reaps them.

Resolution is one clock tick (``SC_CLK_TCK``, usually 10 ms): figures per order of short runs
are coarse.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import psycopg

TICK = float(os.sysconf("SC_CLK_TCK"))


@dataclass(frozen=True)
class Stat:
    pid: int
    comm: str
    ppid: int
    own: int
    """utime + stime, in clock ticks."""
    reaped: int
    """cutime + cstime: children that have exited, in clock ticks."""


def stat(pid: int | str = "self") -> Stat | None:
    """One process's counters, or ``None`` when it does not exist (any more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ")".
    head, _, rest = text.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = rest.split()
    # fields[0] is field 3 (state) of proc(5): ppid is 4, utime..cstime are 14..17.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return Stat(int(pid_text), comm, int(fields[1]), utime + stime, cutime + cstime)


def children(pid: int) -> list[Stat]:
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit() and (child := stat(entry.name)) is not None and child.ppid == pid:
                found.append(child)
    return found


def own_seconds(pid: int | str = "self") -> float:
    """CPU seconds of one process (all its threads), children not included."""
    found = stat(pid)
    return 0.0 if found is None else found.own / TICK


def tree_seconds(pid: int) -> float:
    """CPU seconds of a process, its reaped children and its live children (one level)."""
    root = stat(pid)
    if root is None:
        return 0.0
    total = root.own + root.reaped + sum(child.own + child.reaped for child in children(pid))
    return total / TICK


def postmaster_pid(database_url: str) -> int | None:
    """The local postmaster serving ``database_url``: the parent of our backend.

    ``None`` when the server is not a local process we can see (another host, a container
    with its own pid namespace): then its CPU is not reported.
    """
    with contextlib.suppress(psycopg.Error), psycopg.connect(database_url, connect_timeout=5) as connection:
        row = connection.execute("SELECT pg_backend_pid()").fetchone()
        backend = stat(int(row[0])) if row else None
        if backend is not None and backend.comm == "postgres":
            parent = stat(backend.ppid)
            if parent is not None and parent.comm == "postgres":
                return parent.pid
    return None


@dataclass(frozen=True)
class Meter:
    """Readings of the API process, the Postgres server, Redis (when it is a local process we
    started) and this process (the load client)."""

    api: int
    postgres: int | None
    redis: int | None = None

    def read(self) -> dict[str, float]:
        readings = {"api": tree_seconds(self.api), "client": own_seconds("self")}
        if self.postgres is not None:
            readings["postgres"] = tree_seconds(self.postgres)
        if self.redis is not None:
            readings["redis"] = own_seconds(self.redis)
        return readings

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: after[name] - before[name] for name in before}
