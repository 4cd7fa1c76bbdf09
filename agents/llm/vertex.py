"""Vertex AI Gemini, through the Google Gen AI SDK (``google-genai``) in Vertex mode.

Why not ``vertexai.generative_models`` from google-cloud-aiplatform: in the pinned
google-cloud-aiplatform 2.7.0 the module still exists, but ``GenerativeModel()`` emits a
deprecation warning on construction ("deprecated as of June 24, 2025 and will be removed on
June 24, 2026") and Google's migration guide names ``google-genai`` with
``Client(vertexai=True, ...)`` as the supported path for Gemini on Vertex. google-genai is
already a dependency of google-cloud-aiplatform 2.x, so this adds nothing to the image.

It also gives us what the guard needs: ``HttpOptions(base_url=...)`` points the client at
any endpoint (a regional or private endpoint, or a test server speaking the Vertex
``generateContent`` REST format), ``httpx_async_client`` injects our own httpx client (and
thereby its transport), retries are off unless asked for, and ``usage_metadata`` carries the
token counts.

Credentials: Application Default Credentials (workload identity on GKE) with ``project``
and ``location``, or a Vertex express-mode API key; tests pass explicit credentials.
"""

from __future__ import annotations

from typing import Any

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from sapphire.agents.llm import base


class VertexGeminiProvider:
    name = "vertex"

    def __init__(
        self,
        *,
        model: str,
        project: str | None = None,
        location: str | None = None,
        endpoint: str | None = None,
        api_key: str | None = None,
        credentials: Any = None,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self._http = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        options = genai_types.HttpOptions(
            base_url=endpoint or None,
            timeout=int(timeout_seconds * 1000),
            httpx_async_client=self._http,
        )
        self._client = genai.Client(
            vertexai=True,
            project=None if api_key else project,
            location=None if api_key else location,
            api_key=api_key or None,
            credentials=credentials,
            http_options=options,
        )

    async def generate(self, *, system: str, prompt: str, schema: dict[str, object]) -> base.Completion:
        config = genai_types.GenerateContentConfig(
            system_instruction=system,
            temperature=0,
            candidate_count=1,
            response_mime_type="application/json",
            response_json_schema=schema,
        )
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model, contents=prompt, config=config
            )
        except genai_errors.APIError as error:
            if error.code == 429:
                raise base.RateLimitedError(f"429 from Vertex: {error.message}") from error
            raise base.ProviderError(f"Vertex HTTP {error.code}: {error.message}") from error
        except (httpx.HTTPError, ValueError) as error:
            # ValueError: the SDK could not parse the response envelope.
            raise base.ProviderError(f"{type(error).__name__}: {error}") from error
        text = response.text
        if not text:
            raise base.ProviderError("Vertex returned no text candidate")
        usage = response.usage_metadata
        return base.Completion(
            text=text,
            prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
            completion_tokens=(usage.candidates_token_count or 0) if usage else 0,
        )

    async def aclose(self) -> None:
        await self._client.aio.aclose()
        self._client.close()  # the SDK also built a sync client; release its pool too
        await self._http.aclose()
