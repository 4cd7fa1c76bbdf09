"""The URLs ``sapphire up`` prints, which its own agents, feed and summary also call."""

from __future__ import annotations

from pathlib import Path

import pytest

from sapphire.up import runner, setup

TOKENS = setup.Tokens(read="r", agent="a", admin="x", generated=False)


@pytest.mark.parametrize(
    ("host", "api"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://127.0.0.1:8000"),
        ("::1", "http://[::1]:8000"),
        ("localhost", "http://localhost:8000"),
    ],
)
def test_the_api_link_is_a_url_a_client_reaches_the_bound_host_by(host: str, api: str) -> None:
    links = runner._links(setup.Options(path=Path("agents"), host=host), 8000, TOKENS)
    assert links["api"] == api
    assert links["dashboard"] == f"{api}/dashboard"
