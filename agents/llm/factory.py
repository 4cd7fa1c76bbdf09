"""From agent settings to a guarded model, or None for deterministic analysis."""

from __future__ import annotations

import httpx

from sapphire.agents.llm import base

NO_MODEL = frozenset({"", "none"})
OPENAI_COMPATIBLE = frozenset({"openai-compatible", "openai", "xai", "grok", "vllm", "ollama"})


def build_model(
    *,
    provider: str,
    name: str,
    endpoint: str = "",
    api_key: str = "",
    project: str = "",
    location: str = "",
    timeout_seconds: float = 10.0,
    max_calls_per_minute: int = 30,
    transport: httpx.AsyncBaseTransport | None = None,
    wait_for_slot: bool = False,
) -> base.GuardedModel | None:
    """The model for ``spec.model``; None when no provider is set (``none`` or empty)."""
    kind = provider.strip().lower()
    if kind in NO_MODEL:
        return None
    if not name:
        raise ValueError("model_name: a model provider needs a model name")
    raw: base.Provider
    if kind == "vertex":
        from sapphire.agents.llm import vertex

        raw = vertex.VertexGeminiProvider(
            model=name,
            project=project or None,
            location=location or None,
            endpoint=endpoint or None,
            api_key=api_key or None,
            timeout_seconds=timeout_seconds,
            transport=transport,
        )
    elif kind in OPENAI_COMPATIBLE:
        from sapphire.agents.llm import openai_compatible

        raw = openai_compatible.OpenAICompatibleProvider(
            endpoint=endpoint,
            model=name,
            api_key=api_key,
            timeout_seconds=timeout_seconds,
            transport=transport,
        )
    else:
        raise ValueError(
            f"model_provider: unknown provider {provider!r}; expected vertex, openai-compatible or none"
        )
    return base.GuardedModel(
        raw,
        timeout_seconds=timeout_seconds,
        max_calls_per_minute=max_calls_per_minute,
        wait_for_slot=wait_for_slot,
    )
