"""The one small interface every LLM provider sits behind, and the guard around each call.

A provider only knows its wire format: :meth:`Provider.generate` sends a system and user
prompt, asks for JSON matching a schema, and returns the raw text plus token counts, or
raises :class:`ProviderError`. Everything a trading agent needs on top of that is applied
once, here, by :class:`GuardedModel`:

* a rate limit (token bucket; an empty bucket is an abstention, never a wait, unless the
  caller is a backtest filling its answer cache: ``wait_for_slot``);
* a hard timeout around the whole call;
* validation of the answer against a pydantic schema;
* Prometheus counters for calls by outcome and for prompt/completion tokens;
* abstention: any failure (HTTP error, 429, timeout, malformed or off-schema JSON) returns
  ``None``. The caller then emits no signal. It never guesses a default answer.

Errors::

    ProviderError          the provider could not produce an answer
    └── RateLimitedError   the endpoint said 429 (or our bucket was empty)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol, TypeVar

import prometheus_client
import pydantic

from sapphire.agents.llm import ratelimit

logger = logging.getLogger(__name__)

SchemaT = TypeVar("SchemaT", bound=pydantic.BaseModel)

CALLS = prometheus_client.Counter(
    "sapphire_llm_calls_total",
    "LLM calls by provider, model and outcome (ok, timeout, rate_limited, error, invalid).",
    ["provider", "model", "outcome"],
)
TOKENS = prometheus_client.Counter(
    "sapphire_llm_tokens_total",
    "Tokens reported by the LLM endpoint, by kind (prompt, completion).",
    ["provider", "model", "kind"],
)
LATENCY = prometheus_client.Histogram(
    "sapphire_llm_call_seconds",
    "Wall time of LLM calls that reached the provider.",
    ["provider", "model"],
)


class ProviderError(Exception):
    """The provider could not produce an answer (transport, HTTP status, empty reply)."""


class RateLimitedError(ProviderError):
    """The endpoint answered 429, or the local bucket had no call left."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Provider(Protocol):
    """One wire format. Implementations must not retry on their own: the guard decides."""

    name: str
    model: str

    async def generate(self, *, system: str, prompt: str, schema: dict[str, object]) -> Completion:
        """Ask for a JSON object matching ``schema``; raise :class:`ProviderError` on failure."""
        ...

    async def aclose(self) -> None: ...


class StructuredModel(Protocol):
    """What analysts and the executor depend on: a typed question, a typed answer or None."""

    @property
    def label(self) -> str:
        """``provider/model``, recorded on the signals the model shaped."""
        ...

    async def ask(self, *, system: str, prompt: str, schema: type[SchemaT]) -> SchemaT | None: ...


def parse_json_object(text: str) -> object:
    """The JSON object in ``text``, tolerating a Markdown code fence around it."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`")
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else stripped
    return json.loads(stripped)


class GuardedModel:
    """A :class:`Provider` wrapped in rate limit, timeout, validation, metrics and abstention."""

    def __init__(
        self,
        provider: Provider,
        *,
        timeout_seconds: float,
        max_calls_per_minute: int,
        bucket: ratelimit.TokenBucket | None = None,
        wait_for_slot: bool = False,
    ) -> None:
        self.provider = provider
        self.timeout_seconds = timeout_seconds
        self.bucket = bucket or ratelimit.TokenBucket(per_minute=max_calls_per_minute)
        self.wait_for_slot = wait_for_slot
        """Wait for a rate-limit slot instead of abstaining (a backtest filling its cache)."""

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.provider.model}"

    async def aclose(self) -> None:
        await self.provider.aclose()

    def _count(self, outcome: str) -> None:
        CALLS.labels(self.provider.name, self.provider.model, outcome).inc()

    async def ask(self, *, system: str, prompt: str, schema: type[SchemaT]) -> SchemaT | None:
        """The validated answer, or None on any failure (logged and counted, never raised)."""
        while self.wait_for_slot and not self.bucket.try_acquire():  # noqa: ASYNC110 - a clock, not an event
            await asyncio.sleep(self.bucket.seconds_until_available())
        if not self.wait_for_slot and not self.bucket.try_acquire():
            self._count("rate_limited")
            logger.info("llm abstains: local rate limit", extra={"model": self.label})
            return None
        started = time.monotonic()
        try:
            completion = await asyncio.wait_for(
                self.provider.generate(system=system, prompt=prompt, schema=schema.model_json_schema()),
                timeout=self.timeout_seconds,
            )
        except TimeoutError:
            self._count("timeout")
            logger.warning(
                "llm abstains: timeout", extra={"model": self.label, "timeout": self.timeout_seconds}
            )
            return None
        except RateLimitedError as error:
            self._count("rate_limited")
            logger.warning(
                "llm abstains: endpoint rate limit", extra={"model": self.label, "error": str(error)}
            )
            return None
        except ProviderError as error:
            self._count("error")
            logger.warning("llm abstains: provider error", extra={"model": self.label, "error": str(error)})
            return None
        finally:
            LATENCY.labels(self.provider.name, self.provider.model).observe(time.monotonic() - started)
        TOKENS.labels(self.provider.name, self.provider.model, "prompt").inc(completion.prompt_tokens)
        TOKENS.labels(self.provider.name, self.provider.model, "completion").inc(completion.completion_tokens)
        try:
            answer = schema.model_validate(parse_json_object(completion.text))
        except (ValueError, pydantic.ValidationError) as error:
            self._count("invalid")
            logger.warning(
                "llm abstains: answer does not match the schema",
                extra={"model": self.label, "error": str(error)[:300]},
            )
            return None
        self._count("ok")
        return answer
