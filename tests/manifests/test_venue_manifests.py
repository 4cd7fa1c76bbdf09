"""The GKE overlay trades paper on live prices by default; the live-venue component switches
it to a live exchange account whose keys come only from a Secret."""

from __future__ import annotations

import pytest

from sapphire.trader_api.settings import TraderApiSettings
from tests.manifests.conftest import OVERLAYS, Json, container, env, find, render
from tests.manifests.test_gke_components import enabled


def trader_api_env(documents: list[Json]) -> dict[str, Json]:
    pod = find(documents, "Deployment", "trader-api")["spec"]["template"]["spec"]
    return env(container(pod, "trader-api"))


def plain(variables: dict[str, Json]) -> dict[str, str]:
    return {name: item["value"] for name, item in variables.items() if "value" in item}


def test_gke_runs_paper_on_a_live_ccxt_feed_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = trader_api_env(render(OVERLAYS["gke"]))
    values = plain(variables)
    assert values["SAPPHIRE_FEED"] == "ccxt"
    assert "SAPPHIRE_VENUE" not in variables  # the default: paper
    assert not any(name.startswith("SAPPHIRE_VENUE_API") for name in variables)
    for name, value in values.items():  # the settings as the pod reads them: from its environment
        if name.startswith(("SAPPHIRE_FEED", "SAPPHIRE_CCXT")):
            monkeypatch.setenv(name, value)
    settings = TraderApiSettings(dev_mode=True)
    assert (settings.feed, settings.feed_exchange, settings.venue) == ("ccxt", "kraken", "paper")
    assert settings.ccxt_quote_currencies == {"USD": "USD"}


def test_the_live_venue_component_takes_its_keys_from_a_secret(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    overlay = enabled(tmp_path_factory.mktemp("gke-live"), ("../../components/live-venue",))
    variables = trader_api_env(render(overlay))
    assert [v["name"] for v in variables.values()].count("SAPPHIRE_VENUE") == 1
    assert plain(variables)["SAPPHIRE_VENUE"] == "ccxt"
    assert plain(variables)["SAPPHIRE_VENUE_SANDBOX"] == "true"
    for name, key in (("SAPPHIRE_VENUE_API_KEY", "api-key"), ("SAPPHIRE_VENUE_API_SECRET", "api-secret")):
        assert "value" not in variables[name]
        assert variables[name]["valueFrom"]["secretKeyRef"] == {"name": "sapphire-venue", "key": key}
