"""LLM agents in backtests: answers cached on the model and the prompt, so a rerun is free and
deterministic; without a cached answer, ``--llm-miss`` chooses between calling and abstaining.

The model is the real OpenAI-compatible client behind the real guard, against the local server
that speaks the chat-completions wire format (``tests/agents/llm_server.py``)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import pydantic
import pytest
from rich.console import Console
from typer.testing import CliRunner

from sapphire import cli
from sapphire.agents.llm import base, cache, openai_compatible
from sapphire.backtest import command, replay, sample
from tests.agents import llm_server

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


class Verdict(pydantic.BaseModel):
    direction: Literal["long", "short", "flat"]
    strength: float = pydantic.Field(ge=-1, le=1)


THESIS = {
    "direction": "long",
    "strength": 0.8,
    "confidence": 0.9,
    "horizon_seconds": 900,
    "thesis": "momentum and volatility agree",
}


@pytest.fixture
def script() -> llm_server.Script:
    return llm_server.Script(answer={"direction": "short", "strength": -0.4})


@pytest.fixture
def endpoint(script: llm_server.Script) -> Iterator[str]:
    with llm_server.serve(script) as url:
        yield url


@pytest.fixture
async def guarded(endpoint: str) -> AsyncIterator[base.GuardedModel]:
    provider = openai_compatible.OpenAICompatibleProvider(
        endpoint=endpoint + "/v1", model="grok-test", api_key="xai-test", timeout_seconds=2
    )
    model = base.GuardedModel(provider, timeout_seconds=2, max_calls_per_minute=600)
    yield model
    await model.aclose()


def answer_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json"))


def cached(directory: Path, on_miss: cache.OnMiss, inner: base.StructuredModel | None) -> cache.CachedModel:
    return cache.CachedModel(
        label="openai-compatible/grok-test", cache=cache.AnswerCache(directory), on_miss=on_miss, inner=inner
    )


async def test_a_miss_abstains_or_calls_and_a_rerun_answers_from_disk(
    tmp_path: Path, guarded: base.GuardedModel, script: llm_server.Script
) -> None:
    abstaining = cached(tmp_path, "abstain", guarded)
    assert await abstaining.ask(system="s", prompt="p", schema=Verdict) is None
    assert script.requests == []
    assert abstaining.counts.abstained == 1

    calling = cached(tmp_path, "call", guarded)
    answer = await calling.ask(system="s", prompt="p", schema=Verdict)
    assert answer == Verdict(direction="short", strength=-0.4)
    assert len(script.requests) == 1
    assert calling.counts.stored == 1
    (stored,) = answer_files(tmp_path)
    assert json.loads(stored.read_text())["answer"] == {"direction": "short", "strength": -0.4}

    # A rerun without any model at all gets the same answer, and the endpoint hears nothing.
    rerun = cached(tmp_path, "abstain", None)
    assert await rerun.ask(system="s", prompt="p", schema=Verdict) == answer
    assert rerun.counts.hits == 1
    assert len(script.requests) == 1

    # Another prompt is another question.
    assert await rerun.ask(system="s", prompt="p2", schema=Verdict) is None


async def test_a_failed_call_is_not_stored_so_the_next_run_asks_again(
    tmp_path: Path, guarded: base.GuardedModel, script: llm_server.Script
) -> None:
    script.mode = "429"
    model = cached(tmp_path, "call", guarded)
    assert await model.ask(system="s", prompt="p", schema=Verdict) is None
    assert len(script.requests) == 1
    assert list(answer_files(tmp_path)) == []
    script.mode = "ok"
    assert await model.ask(system="s", prompt="p", schema=Verdict) is not None
    assert len(script.requests) == 2
    assert model.counts.stored == 1


async def test_a_damaged_answer_names_its_file(tmp_path: Path, guarded: base.GuardedModel) -> None:
    model = cached(tmp_path, "call", guarded)
    await model.ask(system="s", prompt="p", schema=Verdict)
    (stored,) = answer_files(tmp_path)
    stored.write_text('{"answer": {"direction": "sideways"}}')
    with pytest.raises(cache.CacheError, match=f"{stored.name} does not match Verdict"):
        await model.ask(system="s", prompt="p", schema=Verdict)


def test_call_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(cache.CacheError, match="--llm-miss: 'call' needs a model"):
        cached(tmp_path, "call", None)


def strategist_plan(directory: Path, endpoint: str) -> Path:
    """The examples' momentum analyst and executor, and a strategist on the local model."""
    for name in ("momentum.yaml", "executor.yaml"):
        (directory / name).write_text((EXAMPLES / name).read_text(encoding="utf-8"), encoding="utf-8")
    (directory / "strategist.yaml").write_text(
        f"""apiVersion: trading.sapphire-ai.com/v1alpha1
kind: TradingAgent
metadata:
  name: strategist-llm
spec:
  role: strategist
  symbols: [BTC-USD, ETH-USD]
  intervalSeconds: 300
  model:
    provider: openai-compatible
    name: grok-test
    endpoint: {endpoint}/v1
    maxCallsPerMinute: 1000
""",
        encoding="utf-8",
    )
    return directory


def without_answer_counts(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in {"model_answers", "notices"}}


def test_a_backtest_rerun_from_the_cache_replays_the_same_trades_without_the_model(
    tmp_path: Path, endpoint: str, script: llm_server.Script
) -> None:
    script.answer = dict(THESIS)
    (tmp_path / "agents").mkdir()
    agents = strategist_plan(tmp_path / "agents", endpoint)
    bars = tmp_path / "bars.csv"
    bars.write_text(sample.synthetic_bars(days=0.05), encoding="utf-8")  # 72 minutes
    answers = tmp_path / "answers"
    console = Console(file=io.StringIO())

    def run(on_miss: cache.OnMiss, output: str) -> dict[str, Any]:
        options = command.Options(
            path=agents,
            data=bars,
            output=tmp_path / output,
            progress=False,
            llm_cache=answers,
            llm_miss=on_miss,
        )
        return command.run(options, console)

    first = run("call", "first")
    asked = len(script.requests)
    assert asked > 0
    assert first["model_answers"] == {"on_miss": "call", "hits": 0, "stored": asked, "abstained": 0}
    (strategist,) = [row for row in first["per_agent"] if row["agent"] == "strategist-llm"]
    assert strategist["signals"] > 0  # the model's theses became signals

    second = run("abstain", "second")
    assert len(script.requests) == asked  # the rerun asked the model nothing
    assert second["model_answers"] == {"on_miss": "abstain", "hits": asked, "stored": 0, "abstained": 0}
    assert without_answer_counts(second) == without_answer_counts(first)
    assert any(
        "strategist-llm: spec.model openai-compatible/grok-test answers from the cache" in n
        for n in second["notices"]
    )
    assert not any("is not called locally" in n for n in second["notices"])


def test_the_command_line_names_a_bad_llm_option(tmp_path: Path) -> None:
    bars = tmp_path / "bars.csv"
    bars.write_text(sample.synthetic_bars(days=0.01), encoding="utf-8")
    base_args = [
        "backtest",
        "-f",
        str(EXAMPLES),
        "--data",
        str(bars),
        "-o",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    result = CliRunner().invoke(cli.app, [*base_args, "--llm-miss", "guess"])
    assert result.exit_code == 2
    assert "--llm-miss: expected abstain or call" in result.output
    result = CliRunner().invoke(cli.app, [*base_args, "--llm-miss", "call"])
    assert result.exit_code == 2
    assert "--llm-miss: call stores answers, so it needs --llm-cache" in result.output
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(cli.app, [*base_args, "--llm-cache", str(tmp_path / "file")])
    assert result.exit_code == 2
    assert "is not a directory" in result.output


def test_without_a_cache_models_are_left_out_as_before(tmp_path: Path) -> None:
    with pytest.raises(replay.BacktestError, match="needs --llm-cache"):
        command.model_answers(command.Options(path=None, data=tmp_path, llm_miss="call"))
    assert command.model_answers(command.Options(path=None, data=tmp_path)) is None
