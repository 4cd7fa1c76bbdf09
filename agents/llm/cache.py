"""Model answers kept on disk, keyed on the model and the prompt: a rerun is free and deterministic.

A backtest asks the same questions every time it replays the same history, so the first
run's answers can serve every later one. :class:`CachedModel` sits in front of any
:class:`~sapphire.agents.llm.base.StructuredModel`:

* a **hit** is the stored answer, validated against the schema the caller asks for;
* a **miss** either calls the model (``on_miss="call"``) and stores a valid answer, or
  abstains (``on_miss="abstain"``): the caller gets ``None``, exactly as for a model that
  failed, so a run without credentials never guesses;
* a failed call (the guard's ``None``) is never stored: the next run asks again.

The key is the SHA-256 of the model label, the system prompt, the prompt and the answer's
JSON schema, so a changed prompt or schema is a new question. Each answer is one small JSON
file named by its key, written atomically (a crash leaves the old file or none), readable
by a person and safe to commit beside the data it was made from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Literal

import pydantic

from sapphire.agents.llm import base

OnMiss = Literal["call", "abstain"]
ON_MISS_CHOICES: tuple[OnMiss, ...] = ("abstain", "call")


class CacheError(ValueError):
    """The cache directory or one of its files cannot be used (the message names the file)."""


def question_key(*, model: str, system: str, prompt: str, schema: dict[str, object]) -> str:
    """The hex SHA-256 naming one question to one model."""
    canonical = json.dumps(
        {"model": model, "system": system, "prompt": prompt, "schema": schema},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclasses.dataclass
class CacheCounts:
    """What the cache did during a run; the backtest report states it."""

    hits: int = 0
    stored: int = 0
    """Misses answered by the model and stored."""
    abstained: int = 0
    """Misses with ``on_miss="abstain"``, or a model call that produced no valid answer."""


class AnswerCache:
    """A directory of answers, one ``<key>.json`` per question."""

    def __init__(self, directory: Path) -> None:
        if directory.exists() and not directory.is_dir():
            raise CacheError(f"--llm-cache: {directory} exists and is not a directory")
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> object | None:
        """The stored answer for ``key``, or None when the question was never answered."""
        path = self._path(key)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise CacheError(f"--llm-cache: {path} is unreadable: {error}") from None
        if not isinstance(stored, dict) or "answer" not in stored:
            raise CacheError(f"--llm-cache: {path} has no 'answer'")
        answer: object = stored["answer"]
        return answer

    def store(self, key: str, *, model: str, prompt: str, answer: object) -> None:
        """Write one answer atomically (temporary file, then rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"model": model, "prompt": prompt, "answer": answer}, indent=1, sort_keys=True, ensure_ascii=False
        )
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".answer-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(body + "\n")
            os.replace(temporary, self._path(key))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class CachedModel:
    """A :class:`~sapphire.agents.llm.base.StructuredModel` answering from an :class:`AnswerCache`.

    ``inner`` is the model asked on a miss; it may be None only with ``on_miss="abstain"``
    (a run without credentials). ``label`` is the spec's ``provider/model``: it keys the
    cache and is recorded on the signals, whether the answer came from disk or the wire."""

    def __init__(
        self,
        *,
        label: str,
        cache: AnswerCache,
        on_miss: OnMiss,
        inner: base.StructuredModel | None = None,
        counts: CacheCounts | None = None,
    ) -> None:
        if on_miss == "call" and inner is None:
            raise CacheError("--llm-miss: 'call' needs a model to call; none is configured")
        self._label = label
        self.cache = cache
        self.on_miss = on_miss
        self.inner = inner
        self.counts = counts if counts is not None else CacheCounts()

    @property
    def label(self) -> str:
        return self._label

    async def ask(self, *, system: str, prompt: str, schema: type[base.SchemaT]) -> base.SchemaT | None:
        key = question_key(model=self._label, system=system, prompt=prompt, schema=schema.model_json_schema())
        stored = self.cache.load(key)
        if stored is not None:
            try:
                answer = schema.model_validate(stored)
            except pydantic.ValidationError as error:
                raise CacheError(
                    f"--llm-cache: {self.cache._path(key)} does not match {schema.__name__}: {error}"
                ) from None
            self.counts.hits += 1
            return answer
        if self.on_miss == "abstain" or self.inner is None:
            self.counts.abstained += 1
            return None
        fresh = await self.inner.ask(system=system, prompt=prompt, schema=schema)
        if fresh is None:
            self.counts.abstained += 1
            return None
        self.cache.store(key, model=self._label, prompt=prompt, answer=fresh.model_dump(mode="json"))
        self.counts.stored += 1
        return fresh
