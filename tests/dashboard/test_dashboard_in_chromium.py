"""The dashboard in a real browser: Debian's headless Chromium, driven by selenium through
/usr/bin/chromedriver, against a real ``sapphire up``. It signs in from the link's fragment,
draws the charts, updates the tables live, marks a fill on its symbol's chart within a
second, keeps the equity history over a reload, flags a silent agent stale, and its HALT
button, with an admin token, stops new orders. Screenshots at 1280 x 900 land in
``tests/artifacts/``."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait
from typer.testing import CliRunner

from sapphire import cli
from sapphire.backtest import sample
from tests.local.test_sapphire_up import EXAMPLES, TOKENS, sapphire_up
from tests.support import metrics, processes

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
READ, ADMIN = TOKENS["SAPPHIRE_READ_TOKEN"], TOKENS["SAPPHIRE_ADMIN_TOKEN"]
AGENT = TOKENS["SAPPHIRE_AGENT_TOKEN"]
SCREEN = (1280, 900)
"""The size of the kept screenshots."""
STALE_AFTER = 15
"""agent_stale_after_seconds of this run: short, so that a silent agent goes stale during the
test, and three times the heartbeat period of ``sapphire up``'s own agents (5 s)."""
FILL_TO_MARKER = 1.0
"""Seconds the dashboard may take from a fill's event to its marker on the chart."""
# Without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",  # the screenshots' size; the agents table must fit its width
)


@dataclass(frozen=True)
class Platform:
    url: str

    def api(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {READ}"}, timeout=5)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = httpx.post(
            f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {AGENT}"}, timeout=5
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    def metric(self, sample: str) -> float:
        """The sum of the trader API's ``/metrics`` samples named ``sample``."""
        return metrics.sample_sum(httpx.get(f"{self.url}/metrics", timeout=5).text, sample)


@pytest.fixture(scope="module")
def backtests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished backtest of the examples, where SAPPHIRE_BACKTEST_REPORTS_DIR points, and
    trial 2 of a grid (a copy of its report, where a BacktestRun's trial writes one)."""
    root = tmp_path_factory.mktemp("backtests")
    bars = root.parent / "bars.csv"
    bars.write_text(sample.synthetic_bars(days=0.03), encoding="utf-8")
    result = CliRunner().invoke(
        cli.app,
        ["backtest", "-f", str(EXAMPLES), "--data", str(bars), "-o", str(root / "examples"), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    (root / "grid" / "trial-2").mkdir(parents=True)
    for file in ("report.json", "report.html"):
        (root / "grid" / "trial-2" / file).write_bytes((root / "examples" / file).read_bytes())
    return root


@pytest.fixture
def platform(tmp_path: Path, backtests: Path) -> Iterator[Platform]:
    port = processes.free_port()
    log = tmp_path / "sapphire-up.log"
    process = sapphire_up(
        "-f",
        str(EXAMPLES),
        "--port",
        str(port),
        "--speed",
        "10",
        "--duration",
        "150",  # longer than the test: the fixture stops it
        "--no-live",
        cwd=tmp_path,
        output=log,
        env=TOKENS
        | {
            "SAPPHIRE_BACKTEST_REPORTS_DIR": str(backtests),
            "SAPPHIRE_AGENT_STALE_AFTER_SECONDS": str(STALE_AFTER),
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, timeout=60, what="sapphire up"
        )
        yield Platform(url)
    finally:
        processes.stop_process(process)  # type: ignore[arg-type]


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    assert not missing, (
        f"missing {missing}: run scripts/ensure-system-packages.sh (Debian chromium, chromium-driver)"
    )
    profile = tempfile.mkdtemp(prefix="sapphire-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver path: selenium never looks for (or downloads) a driver of its own.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """A screenshot of the page at 1280 x 900, kept in tests/artifacts/."""
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if (width, height) != SCREEN:  # the window's frame: grow it until the page itself is 1280 x 900
        driver.set_window_size(2 * SCREEN[0] - width, 2 * SCREEN[1] - height)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    png = path.read_bytes()
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == SCREEN
    return path


def wait_for(driver: webdriver.Chrome, script: str, *, timeout: float, what: str) -> Any:
    """Poll a JavaScript expression until it is truthy; its value."""
    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(
        lambda d: d.execute_script(f"return {script}"), message=f"waiting for {what}"
    )


CHART_POINTS = "(document.getElementById('equity-chart').data || [{x: []}])[0].x.length"
ROWS = "document.querySelectorAll('#{0} tr').length"
GHOST = "ghost-analyst"
"""An agent that sends one heartbeat and then falls silent."""


def agent_row(name: str) -> str:
    """A JavaScript expression: the cells' texts of ``name``'s row in the agents table, or
    undefined (read in one script: the table is re-rendered every few seconds)."""
    return (
        "[...document.querySelectorAll('#agents tr')].map((tr) => [...tr.cells].map((td) => td.textContent))"
        f".find((row) => row[0] === {name!r})"
    )


def fill_timings(driver: webdriver.Chrome, fill_id: str) -> dict[str, float] | None:
    """When (epoch seconds, the page's clock) the dashboard received the fill's event and drew
    its marker: the page's User Timing marks, None until both exist."""
    marks = driver.execute_script(
        "const at = (name) => performance.getEntriesByName(name, 'mark').map("
        "(mark) => (performance.timeOrigin + mark.startTime) / 1000)[0];"
        f"return {{received: at('fill-received {fill_id}'), drawn: at('fill-drawn {fill_id}')}};"
    )
    return marks if marks["received"] is not None and marks["drawn"] is not None else None


@pytest.mark.timeout(150)  # a real platform and browser; it usually takes about a minute
def test_the_dashboard_updates_live_and_halt_stops_new_orders(
    platform: Platform, browser: webdriver.Chrome
) -> None:
    browser.get(f"{platform.url}/dashboard#token={READ}")
    wait_for(browser, "document.body.dataset.ready === 'true'", timeout=30, what="sign-in")
    assert "token" not in browser.current_url  # the fragment is taken out of the address bar
    assert READ not in browser.page_source
    # The silent agent: alive now, stale once STALE_AFTER passes without another heartbeat.
    ghost = platform.post(f"/v1/agents/{GHOST}/heartbeat", {"role": "momentum", "symbols": ["BTC-USD"]})
    ghost_seen = time.monotonic()
    assert ghost["alive"]

    # The chart and the rows fill, then keep moving while the agents trade.
    wait_for(browser, f"{CHART_POINTS} >= 3", timeout=30, what="equity samples on the chart")
    assert browser.find_elements(By.CSS_SELECTOR, "#equity-chart .scatterlayer .trace")
    wait_for(browser, f"{ROWS.format('orders')} > 0 && {ROWS.format('fills')} > 0", timeout=60, what="orders")
    wait_for(
        browser, f"{ROWS.format('signals')} > 0 && {ROWS.format('agents')} == 8", timeout=30, what="rows"
    )
    wait_for(
        browser, "document.querySelector('#signals-chart .heatmaplayer') !== null", timeout=10, what="heatmap"
    )
    points = wait_for(browser, f"{CHART_POINTS} >= 8 && {CHART_POINTS}", timeout=30, what="a longer chart")
    counts = browser.find_element(By.ID, "kpi-counts").text
    wait_for(
        browser,
        f"{CHART_POINTS} > {points} && document.getElementById('kpi-counts').textContent !== {counts!r}",
        timeout=40,
        what="live updates of the chart and the order counts",
    )
    assert browser.find_element(By.ID, "connection").text == "live"

    # Agents: one row each with its figures from /v1/agents/{name}/stats, readable at 1280 px.
    wait_for(browser, "document.getElementById('agents').dataset.stats == 8", timeout=30, what="agent stats")
    executor = next(a for a in platform.api("/v1/agents") if a["role"] == "executor")
    executor_row = agent_row(executor["name"])
    cells = wait_for(
        browser,
        f"(() => {{ const row = {executor_row}; return row && parseInt(row[7]) > 0 && row; }})()",
        timeout=30,
        what="the executor's orders in the agents table",
    )
    stats = platform.api(f"/v1/agents/{executor['name']}/stats")
    assert len(cells) == 10
    assert cells[3] == "deterministic"
    assert 0 < int(cells[7].split(" ")[0]) <= stats["orders"]
    assert browser.execute_script(
        "const card = document.getElementById('agents-card'); return card.scrollWidth <= card.clientWidth"
    ), "the agents table needs a scroll bar at 1280 px"
    # Before its silence is long enough, the ghost's row is not flagged.
    ghost_cells = browser.execute_script(f"return {agent_row(GHOST)}")
    assert ghost_cells, "the ghost agent has no row"
    assert "stale" not in ghost_cells[4] or time.monotonic() - ghost_seen >= STALE_AFTER, ghost_cells

    # The price chart: candles of a traded symbol, with the account's fills on it.
    symbol = wait_for(
        browser, "document.getElementById('price-chart').dataset.symbol", timeout=30, what="a price chart"
    )
    assert platform.api(f"/v1/bars/{symbol}?interval=1m")
    wait_for(
        browser,
        "(() => { const d = document.getElementById('price-chart').data;"
        " return d[0].x.length > 0 && d[1].x.length + d[2].x.length > 0; })()",
        timeout=30,
        what=f"candles and fill markers of {symbol}",
    )
    assert platform.api(f"/v1/fills?symbol={symbol}")
    # The last candle is live: it moves with the ticks streamed over SSE, not by polling /v1/bars.
    ticks = int(browser.execute_script("return document.getElementById('price-chart').dataset.ticks || 0"))
    wait_for(
        browser,
        f"Number(document.getElementById('price-chart').dataset.ticks || 0) >= {ticks + 3}",
        timeout=20,
        what=f"live ticks of {symbol} on its chart",
    )

    # A fill is a marker on its symbol's chart within a second. The page marks when the event
    # stream delivered the fill and when the chart drew it (User Timing, the page's clock); the
    # fill's own timestamp is the API's (same machine), taken in the batch just before it commits.
    placed = platform.post(
        "/v1/orders",
        {
            "client_order_id": f"dashboard-marker-{time.time_ns()}",
            "symbol": symbol,
            "side": "buy",
            "type": "market",
            "quantity": "0.001",
            "time_in_force": "gtc",
        },
    )
    assert placed["status"] == "filled", placed
    (fill,) = [
        f for f in platform.api(f"/v1/fills?symbol={symbol}&limit=50") if f["order_id"] == placed["id"]
    ]
    timings = WebDriverWait(browser, 10, poll_frequency=0.1).until(
        lambda d: fill_timings(d, fill["id"]), message=f"the marker of fill {fill['id']}"
    )
    assert timings is not None  # until() returns only a truthy value
    assert browser.execute_script(
        "return document.getElementById('price-chart').data.slice(1)"
        f".some((trace) => (trace.customdata || []).includes({fill['id']!r}))"
    ), "the chart's markers do not hold the fill"
    stamped = datetime.fromisoformat(fill["ts"]).timestamp()
    drawing = timings["drawn"] - timings["received"]
    print(
        f"\nfill {fill['id']} of {symbol}: event -> marker {drawing * 1000:.0f} ms in the page;"
        f" fill timestamp -> event {(timings['received'] - stamped) * 1000:.0f} ms,"
        f" -> marker {(timings['drawn'] - stamped) * 1000:.0f} ms"
    )
    assert 0 <= drawing < FILL_TO_MARKER, f"the marker took {drawing:.3f} s after the fill's event"
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot(browser, "dashboard.png")
    browser.execute_script("document.getElementById('price-symbol').scrollIntoView()")
    screenshot(browser, "price-chart.png")
    browser.execute_script("window.scrollTo(0, 0)")

    # Backtests: the finished report is listed with its headline, and opens in a tab of its own.
    listed = next(b for b in platform.api("/v1/backtests") if b["name"] == "examples")
    trial = wait_for(
        browser,
        '(() => { const tr = document.querySelector(\'#backtests tr[data-name="grid"][data-trial="2"]\');'
        " return tr && tr.cells[0].textContent; })()",
        timeout=40,
        what="the grid's trial in the backtests table",
    )
    assert trial == "grid · trial 2"
    row = wait_for(
        browser,
        "(() => { const tr = document.querySelector('#backtests tr[data-name=\"examples\"]');"
        " return tr && [...tr.cells].map((td) => td.textContent); })()",
        timeout=40,
        what="the backtest in the backtests table",
    )
    assert row[3] == "BTC-USD ETH-USD SOL-USD"
    assert row[7] == str(listed["trades"])
    tabs = set(browser.window_handles)
    browser.find_element(By.CSS_SELECTOR, '#backtests tr[data-name="examples"] button').click()
    WebDriverWait(browser, 10).until(lambda d: len(d.window_handles) > len(tabs), message="the report's tab")
    dashboard = browser.current_window_handle
    (report_tab,) = set(browser.window_handles) - tabs
    browser.switch_to.window(report_tab)
    # The tab holds the self-contained report (plotly inlined, nothing fetched).
    wait_for(
        browser,
        "document.documentElement.outerHTML.includes('Plotly.newPlot')",
        timeout=20,
        what="the report",
    )
    assert "Sapphire backtest" in browser.page_source
    browser.close()
    browser.switch_to.window(dashboard)

    # A reload keeps the past: the chart opens with the journaled equity history.
    journaled = len(platform.api("/v1/portfolio/history?interval=1s"))
    assert journaled >= 3
    browser.refresh()
    wait_for(browser, "document.body.dataset.ready === 'true'", timeout=30, what="sign-in after a reload")
    wait_for(browser, f"{CHART_POINTS} >= {journaled}", timeout=10, what="the history on the chart")
    assert int(browser.execute_script("return document.body.dataset.historyPoints")) >= journaled
    assert browser.execute_script(
        "return new Date(document.getElementById('equity-chart').data[0].x[0]) < performance.timeOrigin"
    ), "the chart's first point is not from before the reload"

    # The silent agent is flagged stale in its row; the agents that keep beating are not.
    ghost_cells = wait_for(
        browser,
        f"(() => {{ const row = {agent_row(GHOST)}; return row && row[4].includes('stale') && row; }})()",
        timeout=max(5.0, STALE_AFTER + 15 - (time.monotonic() - ghost_seen)),
        what="the silent agent flagged stale",
    )
    print(f"stale agent row: {ghost_cells!r}")
    assert "stale" not in browser.execute_script(f"return {executor_row}")[4]
    browser.execute_script("document.getElementById('agents-card').scrollIntoView()")
    screenshot(browser, "dashboard-stale-agent.png")
    browser.execute_script("window.scrollTo(0, 0)")

    # HALT asks for an admin token: none, then a read token, are refused.
    halt = browser.find_element(By.ID, "halt")
    halt.click()
    message = browser.find_element(By.ID, "risk-message")
    assert message.text == "Enter the admin token first."
    admin_field = browser.find_element(By.ID, "admin-token")
    admin_field.send_keys(READ)
    halt.click()
    wait_for(
        browser,
        "document.getElementById('risk-message').textContent.includes('403')",
        timeout=10,
        what="the read token refused",
    )
    assert platform.api("/v1/risk")["state"] == "ACTIVE"

    admin_field.clear()
    admin_field.send_keys(ADMIN)
    halt.click()
    wait_for(
        browser, "document.getElementById('risk-state').textContent === 'HALTED'", timeout=10, what="HALTED"
    )
    assert platform.api("/v1/risk")["state"] == "HALTED"
    orders_at_halt = len(platform.api("/v1/orders?limit=1000"))
    # The analysts go on signalling: what the executor would trade on, were it not halted.
    signals_at_halt = platform.metric("sapphire_signals_total")
    processes.wait_until(
        lambda: platform.metric("sapphire_signals_total") >= signals_at_halt + 5,
        timeout=30,
        what="five signals stored after HALT",
    )
    assert len(platform.api("/v1/orders?limit=1000")) == orders_at_halt
    assert not [o for o in platform.api("/v1/orders?status=new") if o["status"] == "new"]
    assert browser.find_element(By.ID, "risk-state").text == "HALTED"
    screenshot(browser, "dashboard-halted.png")

    browser.find_element(By.ID, "resume").click()
    wait_for(
        browser, "document.getElementById('risk-state').textContent === 'ACTIVE'", timeout=10, what="RESUME"
    )


def test_the_page_asks_for_a_token_and_refuses_a_wrong_one(
    platform: Platform, browser: webdriver.Chrome
) -> None:
    browser.get(f"{platform.url}/dashboard")
    wait_for(browser, "!document.getElementById('login').hidden", timeout=20, what="the sign-in form")
    browser.find_element(By.ID, "token").send_keys("not-a-token")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_for(
        browser, "document.getElementById('login-error').textContent.length > 0", timeout=10, what="refusal"
    )
    assert "refused" in browser.find_element(By.ID, "login-error").text
    assert browser.find_element(By.ID, "main").get_attribute("hidden") is not None
    headers = httpx.get(f"{platform.url}/dashboard", timeout=5).headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
