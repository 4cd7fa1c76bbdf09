"""Tagging headlines with symbols through the alias list, and the feed's settings."""

from __future__ import annotations

import pydantic
import pytest

from sapphire.news import tagging
from sapphire.news.settings import NewsFeedSettings

TAGGER = tagging.Tagger(tagging.DEFAULT_ALIASES)


@pytest.mark.parametrize(
    ("text", "symbols"),
    [
        ("Bitcoin surges to a record high", ["BTC-USD"]),
        ("bitcoin's rally stalls", ["BTC-USD"]),
        ("BTC and ETH both fall", ["BTC-USD", "ETH-USD"]),
        ("$ETH gains as developers ship an upgrade", ["ETH-USD"]),
        ("Ether slips; Ethereum fees spike", ["ETH-USD"]),
        ("XBT futures open higher", ["BTC-USD"]),
        ("BTC-USD tests 70k", ["BTC-USD"]),
        ("Apple beats earnings expectations", ["AAPL"]),
        ("AAPL closes higher", ["AAPL"]),
        ("Ethiopia's coffee exports grow", []),  # ETH is a ticker: upper case, whole word
        ("eth zurich opens a lab", []),
        ("Pineapple prices rise", []),  # names match whole words only
        ("Bitcoiners gather in Lisbon", []),
        ("Central bank holds rates steady", []),
    ],
)
def test_default_aliases_tag_what_the_text_mentions(text: str, symbols: list[str]) -> None:
    assert TAGGER.symbols(text) == symbols


def test_multi_word_names_and_new_symbols_come_from_the_alias_list() -> None:
    tagger = tagging.Tagger({"SOL-USD": ["SOL", "Solana"], "MSFT": ["Microsoft Corp"]})
    assert tagger.symbols("Solana outage halts SOL transfers") == ["SOL-USD"]
    assert tagger.symbols("microsoft   corp unveils a chip") == ["MSFT"]
    assert tagger.symbols("Microsoft unveils a chip") == []
    assert tagger.symbols("Bitcoin up") == []  # a replaced list knows nothing of the defaults


def test_aliases_are_json_settings_and_bad_ones_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAPPHIRE_NEWS_FEED_URLS", '["https://news.example/feed.rss"]')
    monkeypatch.setenv("SAPPHIRE_NEWS_ALIASES", '{"SOL-USD": ["SOL", "Solana"]}')
    monkeypatch.setenv("SAPPHIRE_DEV_MODE", "true")
    settings = NewsFeedSettings()
    assert settings.news_aliases == {"SOL-USD": ["SOL", "Solana"]}
    assert [str(url) for url in settings.news_feed_urls] == ["https://news.example/feed.rss"]
    monkeypatch.setenv("SAPPHIRE_NEWS_ALIASES", '{"solana": ["SOL"]}')
    with pytest.raises(pydantic.ValidationError, match="news_aliases: 'solana' is not a symbol"):
        NewsFeedSettings()
    monkeypatch.setenv("SAPPHIRE_NEWS_ALIASES", '{"SOL-USD": ["SOL", " "]}')
    with pytest.raises(pydantic.ValidationError, match="news_aliases: SOL-USD has an empty alias"):
        NewsFeedSettings()


def test_a_feed_without_urls_or_a_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pydantic.ValidationError, match="news_feed_urls"):
        NewsFeedSettings(agent_token="agent-token-0123456789")
    with pytest.raises(pydantic.ValidationError, match="agent_token: a real secret is required"):
        NewsFeedSettings(news_feed_urls=["https://news.example/feed.rss"])
