"""LLM providers: the real clients (google-genai in Vertex mode, httpx chat completions) against a
local server speaking each wire format; every failure is an abstention, never a guess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Literal

import prometheus_client
import pydantic
import pytest
from google.oauth2 import credentials as oauth2_credentials

from sapphire.agents.llm import base, factory, ratelimit, vertex
from tests.agents import llm_server


class Verdict(pydantic.BaseModel):
    direction: Literal["long", "short", "flat"]
    strength: float = pydantic.Field(ge=-1, le=1)
    rationale: str


GOOD = {"direction": "long", "strength": 0.5, "rationale": "rates fall"}


@pytest.fixture
def script() -> llm_server.Script:
    return llm_server.Script(answer=dict(GOOD))


@pytest.fixture
def endpoint(script: llm_server.Script) -> Iterator[str]:
    with llm_server.serve(script) as url:
        yield url


@pytest.fixture
def model_timeout() -> float:
    # Generous, so that a first call on a loaded machine (the google-genai client builds its
    # transport lazily) answers instead of timing out; the timeout test overrides it.
    return 10.0


@pytest.fixture(params=["vertex", "openai-compatible"])
async def model(
    request: pytest.FixtureRequest, endpoint: str, model_timeout: float
) -> AsyncIterator[base.GuardedModel]:
    provider: base.Provider
    if request.param == "vertex":
        provider = vertex.VertexGeminiProvider(
            model="gemini-test",
            project="test-project",
            location="us-central1",
            endpoint=endpoint,
            credentials=oauth2_credentials.Credentials(token="test-token"),  # type: ignore[no-untyped-call]
            timeout_seconds=model_timeout,
        )
    else:
        from sapphire.agents.llm import openai_compatible

        provider = openai_compatible.OpenAICompatibleProvider(
            endpoint=endpoint + "/v1", model="grok-test", api_key="xai-test", timeout_seconds=model_timeout
        )
    guarded = base.GuardedModel(provider, timeout_seconds=model_timeout, max_calls_per_minute=60)
    yield guarded
    await guarded.aclose()


def tokens(model: base.GuardedModel, kind: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "sapphire_llm_tokens_total",
        {"provider": model.provider.name, "model": model.provider.model, "kind": kind},
    )
    return value or 0.0


def calls(model: base.GuardedModel, outcome: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "sapphire_llm_calls_total",
        {"provider": model.provider.name, "model": model.provider.model, "outcome": outcome},
    )
    return value or 0.0


async def test_a_valid_answer_is_parsed_and_its_tokens_counted(
    model: base.GuardedModel, script: llm_server.Script
) -> None:
    before = tokens(model, "prompt"), tokens(model, "completion"), calls(model, "ok")
    answer = await model.ask(system="be terse", prompt="BTC?", schema=Verdict)
    assert answer == Verdict(**GOOD)
    assert tokens(model, "prompt") == before[0] + 42
    assert tokens(model, "completion") == before[1] + 7
    assert calls(model, "ok") == before[2] + 1
    path, body, headers = script.requests[-1]
    if model.provider.name == "vertex":
        assert path.endswith(
            "/projects/test-project/locations/us-central1/publishers/google/models/gemini-test:generateContent"
        )
        assert headers["Authorization"] == "Bearer test-token"
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        assert body["generationConfig"]["responseJsonSchema"]["title"] == "Verdict"
        assert body["systemInstruction"]["parts"][0]["text"] == "be terse"
    else:
        assert path == "/v1/chat/completions"
        assert headers["Authorization"] == "Bearer xai-test"
        assert body["response_format"]["json_schema"]["schema"]["title"] == "Verdict"
        assert body["messages"][0] == {"role": "system", "content": "be terse"}


@pytest.mark.parametrize("mode", ["malformed", "off-schema", "429"])
async def test_any_failure_is_an_abstention(
    model: base.GuardedModel, script: llm_server.Script, mode: str
) -> None:
    script.mode = mode
    outcome = {"malformed": "invalid", "off-schema": "invalid", "429": "rate_limited"}[mode]
    before = calls(model, outcome)
    assert await model.ask(system="s", prompt="p", schema=Verdict) is None
    assert calls(model, outcome) == before + 1


@pytest.mark.parametrize("model_timeout", [0.5])
async def test_a_slow_answer_is_a_timeout_abstention(
    model: base.GuardedModel, script: llm_server.Script
) -> None:
    script.mode = "slow"  # the server answers after script.delay (1 s), past the 0.5 s timeout
    before = calls(model, "timeout")
    assert await model.ask(system="s", prompt="p", schema=Verdict) is None
    assert calls(model, "timeout") == before + 1


async def test_an_unreachable_endpoint_is_an_abstention() -> None:
    model = factory.build_model(
        provider="ollama",
        name="llama3",
        endpoint="http://127.0.0.1:9/v1",
        timeout_seconds=0.5,
        max_calls_per_minute=5,
    )
    assert model is not None
    try:
        assert await model.ask(system="s", prompt="p", schema=Verdict) is None
    finally:
        await model.aclose()


async def test_the_rate_limit_refuses_without_calling_the_endpoint(
    endpoint: str, script: llm_server.Script
) -> None:
    model = factory.build_model(
        provider="openai-compatible", name="m", endpoint=endpoint, timeout_seconds=1, max_calls_per_minute=2
    )
    assert model is not None
    try:
        answers = [await model.ask(system="s", prompt="p", schema=Verdict) for _ in range(3)]
    finally:
        await model.aclose()
    assert answers[:2] == [Verdict(**GOOD), Verdict(**GOOD)]
    assert answers[2] is None
    assert len(script.requests) == 2


def test_the_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = ratelimit.TokenBucket(per_minute=60, capacity=1, clock=lambda: now[0])
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    now[0] += 1.0
    assert bucket.try_acquire()


def test_no_provider_means_no_model_and_unknown_providers_are_refused() -> None:
    assert factory.build_model(provider="", name="") is None
    assert factory.build_model(provider="none", name="x") is None
    with pytest.raises(ValueError, match="model_provider: unknown provider 'gpt5'"):
        factory.build_model(provider="gpt5", name="x")


def test_the_bucket_says_how_long_until_its_next_slot() -> None:
    now = [0.0]
    bucket = ratelimit.TokenBucket(per_minute=6, capacity=1, clock=lambda: now[0])
    assert bucket.seconds_until_available() == 0.0
    assert bucket.try_acquire()
    assert bucket.seconds_until_available() == pytest.approx(10.0)
    now[0] = 4.0
    assert bucket.seconds_until_available() == pytest.approx(6.0)
    assert not bucket.try_acquire()
    now[0] = 10.0
    assert bucket.try_acquire()


async def test_a_model_that_waits_for_its_slot_answers_instead_of_abstaining(
    endpoint: str, script: llm_server.Script
) -> None:
    from sapphire.agents.llm import openai_compatible

    provider = openai_compatible.OpenAICompatibleProvider(
        endpoint=endpoint + "/v1", model="grok-test", api_key="xai-test", timeout_seconds=2
    )
    # 600 a minute with a burst of one: the second call needs a slot 0.1 s later.
    bucket = ratelimit.TokenBucket(per_minute=600, capacity=1)
    waiting = base.GuardedModel(provider, timeout_seconds=2, max_calls_per_minute=600, bucket=bucket)
    assert await waiting.ask(system="s", prompt="p", schema=Verdict) is not None
    assert await waiting.ask(system="s", prompt="p", schema=Verdict) is None  # live: abstains
    waiting.wait_for_slot = True
    assert await waiting.ask(system="s", prompt="p", schema=Verdict) is not None
    assert len(script.requests) == 2
    await waiting.aclose()
