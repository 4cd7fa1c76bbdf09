"""Any OpenAI-compatible chat-completions endpoint: xAI Grok, vLLM, Ollama, OpenAI itself.

Spoken directly over httpx rather than through the ``openai`` SDK: the wire format is one
POST, every one of these servers implements it, and an injected :class:`httpx.AsyncBaseTransport`
lets tests and ``sapphire up`` swap the network out (httpx's own pattern). The structured
output is requested with ``response_format: json_schema`` (supported by xAI, vLLM, Ollama
>= 0.5 and OpenAI); the guard validates the answer whatever the server did with it.
"""

from __future__ import annotations

from typing import Any

import httpx

from sapphire.agents.llm import base


class OpenAICompatibleProvider:
    name = "openai-compatible"

    def __init__(
        self,
        *,
        endpoint: str,
        model: str,
        api_key: str = "",
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not endpoint:
            raise ValueError("model_endpoint: an OpenAI-compatible provider needs a base URL (.../v1)")
        self.model = model
        self.url = endpoint.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout_seconds, transport=transport)

    async def generate(self, *, system: str, prompt: str, schema: dict[str, object]) -> base.Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": str(schema.get("title", "answer")), "schema": schema},
            },
        }
        try:
            response = await self._http.post(self.url, json=body)
        except httpx.HTTPError as error:
            raise base.ProviderError(f"{type(error).__name__}: {error}") from error
        if response.status_code == 429:
            raise base.RateLimitedError(f"429 from {self.url}")
        if response.status_code >= 400:
            raise base.ProviderError(f"HTTP {response.status_code} from {self.url}: {response.text[:200]}")
        try:
            payload = response.json()
            content = payload["choices"][0]["message"]["content"]
            usage = payload.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise base.ProviderError(f"not a chat completion: {response.text[:200]}") from error
        if not isinstance(content, str) or not content.strip():
            raise base.ProviderError("empty completion")
        return base.Completion(
            text=content,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    async def aclose(self) -> None:
        await self._http.aclose()
