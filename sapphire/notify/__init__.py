"""Notifications to people (``sapphire notify``), through Apprise.

A separate process, never on the trading hot path: it reads what the trader API published
after commit (the ``events`` channel on Redis), what the operator wrote into TradingAgent and
MigrationRun status (the Kubernetes API), and the trader API's risk figures for the daily
PnL summary, and sends what matters to the Apprise URLs in its Secret (Slack, Telegram,
e-mail, webhooks and about a hundred more).

Layers: :mod:`~sapphire.notify.rules` decides, purely, which observations become which
:class:`~sapphire.notify.rules.Notification` (each with a stable event id);
:mod:`~sapphire.notify.record` is the durable record of what was claimed and sent (SQLite);
:mod:`~sapphire.notify.delivery` sends through Apprise with retries and backoff;
:mod:`~sapphire.notify.service` is the I/O shell of the three sources.

At most once per event: an event id is claimed in the record before anything is sent, and
each attempt is counted there before it is made; after a crash, a claimed notification that
was never attempted is sent, one whose attempt may have gone out is not sent again.
"""
