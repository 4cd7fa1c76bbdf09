"""``python -m bench.serve``: exactly ``sapphire api``, optionally under pyinstrument.

With ``BENCH_PROFILE=<path>`` the process is sampled from SIGUSR1 on (the event loop runs on the
main thread, so a thread-level profile shows where the server's CPU goes, idle waits in
``select`` included) and the text profile is written there once uvicorn has shut down.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from sapphire import cli
from sapphire.trader_api.server import serve
from sapphire.trader_api.settings import TraderApiSettings


def main() -> None:
    settings = cli.load_settings(TraderApiSettings)
    target = os.environ.get("BENCH_PROFILE")
    if not target:
        serve(settings)
        return
    import pyinstrument

    # uvicorn re-raises the SIGTERM it handled once it has shut down; with the default
    # handler that would kill the process before the profile is written.
    signal.signal(signal.SIGTERM, lambda *_: None)
    profiler = pyinstrument.Profiler(interval=0.001, async_mode="disabled")
    # Sampling starts on SIGUSR1, once the benchmark has warmed up: start-up (imports,
    # engine creation) would otherwise dominate a short profile.
    signal.signal(signal.SIGUSR1, lambda *_: None if profiler.is_running else profiler.start())
    try:
        serve(settings)
    finally:
        if profiler.is_running:
            profiler.stop()
        Path(target).write_text(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
