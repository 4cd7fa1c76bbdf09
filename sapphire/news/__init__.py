"""The news feed (``sapphire feed --source news``): RSS and Atom headlines for the sentiment
analyst.

It polls the feeds in its settings (``feedparser``), tags each headline with the symbols it
mentions through an alias list (:mod:`sapphire.news.tagging`), drops the ones it has already
posted, and posts the rest to the trader API's ``/v1/headlines`` with the agent token.

Layers: :mod:`~sapphire.news.tagging` is pure (text in, symbols out);
:mod:`~sapphire.news.entries` turns a parsed feed into headlines, also without I/O;
:mod:`~sapphire.news.feed` is the I/O shell (HTTP, retries, the dedup record).
"""
