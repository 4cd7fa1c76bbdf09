// Sapphire live dashboard: reads /v1 with the token the user gives, listens to /v1/events.
// EventSource cannot send an Authorization header, so the SSE stream is read with fetch.
"use strict";

const MAX_POINTS = 3600;   // equity samples kept on the chart (2 s apart: two hours)
const MAX_ROWS = 25;       // rows per table
const TOKEN_KEY = "sapphire.dashboard.token";

const state = {
  token: null,
  orders: [], fills: [], signals: [],
  orderIds: new Set(), fillIds: new Set(),
  latest: new Map(),       // "agent|symbol" -> latest signal
  heatmapDue: false,
  charted: false,
  history: [],             // equity points of /v1/portfolio/history, drawn when the chart opens
  price: { symbol: null, fills: [], open: [], bars: [] },
  agentStats: new Map(),   // agent name -> /v1/agents/{name}/stats
};

const $ = (selector) => document.querySelector(selector);

class ApiError extends Error {
  constructor(status, detail) { super(`HTTP ${status}: ${detail}`); this.status = status; }
}

async function api(path, { method = "GET", body, token } = {}) {
  const headers = { Authorization: `Bearer ${token || state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const payload = await response.json();
      detail = typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload.detail);
    } catch (_) { /* not JSON: keep the status text */ }
    throw new ApiError(response.status, detail);
  }
  return response.json();
}

// --- formatting ---------------------------------------------------------------------------

const money = (value) => Number(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const qty = (value) => Number(value).toLocaleString("en-US", { maximumFractionDigits: 6 });
const time = (iso) => new Date(iso).toLocaleTimeString("en-GB");
const signClass = (value) => (Number(value) > 0 ? "pos" : Number(value) < 0 ? "neg" : "");

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;   // textContent, never innerHTML: rationale and names are user input
  if (className) td.className = className;
  return td;
}

function fillTable(id, rows, toCells) {
  const body = document.getElementById(id);
  const fresh = rows.slice(0, MAX_ROWS).map((row) => {
    const tr = document.createElement("tr");
    for (const [text, className] of toCells(row)) tr.appendChild(cell(text, className));
    return tr;
  });
  body.replaceChildren(...fresh);
}

function setKpi(id, value, colored) {
  const element = document.getElementById(id);
  element.textContent = money(value);
  element.className = colored ? signClass(value) : "";
}

// --- rendering ----------------------------------------------------------------------------

function renderPortfolio(portfolio) {
  const pnl = Number(portfolio.realized_pnl) + Number(portfolio.unrealized_pnl) - Number(portfolio.fees);
  setKpi("kpi-equity", portfolio.equity);
  setKpi("kpi-pnl", pnl, true);
  setKpi("kpi-realized", portfolio.realized_pnl, true);
  setKpi("kpi-unrealized", portfolio.unrealized_pnl, true);
  setKpi("kpi-exposure", portfolio.gross_exposure);
  fillTable("positions", portfolio.positions, (p) => [
    [p.symbol], [qty(p.quantity), signClass(p.quantity)], [money(p.average_price)], [money(p.mark)],
    [money(p.market_value)], [money(Number(p.realized_pnl) + Number(p.unrealized_pnl)), signClass(Number(p.realized_pnl) + Number(p.unrealized_pnl))],
  ]);
  const now = new Date();
  const points = equityFigures(portfolio);
  if (!state.charted) {
    // Equity on top; below it the PnL split into realized (net of fees) and unrealized. The
    // journaled history comes first, so a reload keeps the past.
    const past = state.history.slice(-MAX_POINTS + 1);
    const xs = [...past.map((p) => new Date(p.ts)), now];
    const series = (index) => [...past.map((p) => equityFigures(p)[index]), points[index]];
    const line = (name, color, yaxis, index) => ({
      x: xs, y: series(index), name, mode: "lines", yaxis, line: { color, width: 2 },
    });
    Plotly.newPlot("equity-chart", [
      line("equity", "#4da3ff", "y", 0),
      line("realized PnL (net of fees)", "#2ecc71", "y2", 1),
      line("unrealized PnL", "#f5b041", "y2", 2),
    ], chartLayout({
      yaxis: { domain: [0.45, 1], gridcolor: "#263049", tickformat: ",.2f", automargin: true },
      yaxis2: { domain: [0, 0.35], gridcolor: "#263049", tickformat: ",.2f", automargin: true, zerolinecolor: "#8d98b3" },
      xaxis: { gridcolor: "#263049", anchor: "y2", automargin: true },
      legend: { orientation: "h", y: 1.12 },
    }), { displayModeBar: false, responsive: true });
    state.charted = true;
  } else {
    Plotly.extendTraces("equity-chart", { x: [[now], [now], [now]], y: points.map((p) => [p]) }, [0, 1, 2], MAX_POINTS);
  }
}

// Equity, realized PnL net of fees, unrealized PnL: of a portfolio or of a history point.
function equityFigures(books) {
  return [Number(books.equity), Number(books.realized_pnl) - Number(books.fees), Number(books.unrealized_pnl)];
}

function chartLayout(extra) {
  return {
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    // No axis on the right: a small margin there, grown by automargin for the last tick label.
    font: { color: "#e6ebf5", size: 11 }, margin: { l: 70, r: 20, t: 10, b: 35 },
    xaxis: { gridcolor: "#263049", automargin: true }, ...extra,
  };
}

function renderRisk(risk) {
  const badge = $("#risk-state");
  badge.textContent = risk.state;
  badge.dataset.state = risk.state;
  $("#risk-reason").textContent = risk.reason || "";
  const rows = [["equity", risk.equity], ["peak equity", risk.peak_equity], ["day start", risk.day_start_equity]];
  if (risk.limits) {
    rows.push(["max order", risk.limits.max_order_notional], ["max position", risk.limits.max_position_notional],
      ["max gross", risk.limits.max_gross_exposure], ["max daily loss", risk.limits.max_daily_loss]);
  }
  fillTable("risk-limits", rows.filter(([, value]) => value !== undefined), ([name, value]) => [[name], [money(value)]]);
}

function symbolsSummary(symbols) {
  // As kubectl shows TradingAgents: ALL in all-market mode, else the first and how many more.
  if (!symbols.length) return "ALL";
  return symbols.length > 2 ? `${symbols.slice(0, 2).join(" ")} +${symbols.length - 2}` : symbols.join(" ");
}

function ago(iso, now) {
  if (!iso) return "–";
  const seconds = Math.max(0, Math.round((now - new Date(iso)) / 1000));
  return seconds < 120 ? `${seconds}s ago` : seconds < 7200 ? `${Math.round(seconds / 60)}m ago` : `${Math.round(seconds / 3600)}h ago`;
}

// One row per agent: what it is, whether it is alive (the API's ``alive``: a heartbeat older than
// agent_stale_after_seconds is flagged stale), and what it did, from /v1/agents/{name}/stats (PnL of its own fills, net of fees).
function renderAgents(agents) {
  const now = Date.now();
  fillTable("agents", agents, (a) => {
    const s = state.agentStats.get(a.name);
    const pnl = s ? Number(s.realized_pnl) + Number(s.unrealized_pnl) - Number(s.fees) : null;
    return [
      [a.name], [a.role], [symbolsSummary(a.symbols)], [a.model || "deterministic"],
      [`${ago(a.last_heartbeat_at, now)}${a.alive ? "" : " · stale"}`, a.alive ? "alive" : "dead stale"],
      [s ? ago(s.last_signal_at, now) : "…"], [s ? String(s.signals_last_hour) : "…"],
      [s ? `${s.orders} (${s.open_orders})` : "…"], [s ? String(s.fills) : "…"],
      [pnl === null ? "…" : money(pnl), pnl === null ? "" : signClass(pnl)],
    ];
  });
}

// What an order waits for: "market", a limit price, or a protective order's trigger
// ("stop 99.00", "trailing_stop 102.00 → 101.50" for a stop-limit's limit); a bracket entry
// names its legs ("99.90 + SL 100bps / TP 250bps"), a leg says it is one ("… · bracket").
function orderPrice(o) {
  if (o.stop_price || o.trail_amount || o.trail_bps) {
    const trigger = o.stop_price ? money(o.stop_price) : "…";
    const then = o.limit_price ? ` → ${money(o.limit_price)}` : "";
    const leg = o.parent_id ? " · bracket" : "";
    return `${o.type} ${trigger}${then}${o.triggered_at ? " (fired)" : ""}${leg}`;
  }
  return (o.limit_price ? money(o.limit_price) : "market") + bracketOf(o.attached);
}

function bracketOf(a) {
  if (!a) return "";
  const stop = a.stop_price ? `SL ${money(a.stop_price)}` : a.stop_bps ? `SL ${a.stop_bps}bps`
    : a.trail_amount ? `TS ${money(a.trail_amount)}` : a.trail_bps ? `TS ${a.trail_bps}bps` : "";
  const take = a.take_profit_price ? `TP ${money(a.take_profit_price)}` : a.take_profit_bps ? `TP ${a.take_profit_bps}bps` : "";
  return " + " + [stop, take].filter(Boolean).join(" / ");
}

function renderOrders() {
  fillTable("orders", state.orders, (o) => [
    [time(o.created_at)], [o.agent || "–"], [o.symbol], [o.side, `side-${o.side}`], [qty(o.quantity)],
    [orderPrice(o)], [o.status],
  ]);
  $("#kpi-counts").textContent = `${state.orderIds.size} / ${state.fillIds.size}`;
}

function renderFills() {
  fillTable("fills", state.fills, (f) => [
    [time(f.ts)], [f.symbol], [f.side, `side-${f.side}`], [qty(f.quantity)], [money(f.price)], [money(f.fee)],
  ]);
  $("#kpi-counts").textContent = `${state.orderIds.size} / ${state.fillIds.size}`;
}

function renderSignals() {
  fillTable("signals", state.signals, (s) => [
    [time(s.created_at)], [s.agent], [s.symbol], [s.direction, `dir-${s.direction}`],
    [Number(s.strength).toFixed(2), signClass(s.strength)], [Number(s.confidence).toFixed(2)],
  ]);
  state.heatmapDue = true;
}

function renderHeatmap() {
  if (!state.heatmapDue) return;
  state.heatmapDue = false;
  const agents = [...new Set([...state.latest.values()].map((s) => s.agent))].sort();
  const symbols = [...new Set([...state.latest.values()].map((s) => s.symbol))].sort();
  const z = agents.map((agent) => symbols.map((symbol) => {
    const signal = state.latest.get(`${agent}|${symbol}`);
    return signal ? Number(signal.strength) : null;
  }));
  const text = agents.map((agent) => symbols.map((symbol) => {
    const signal = state.latest.get(`${agent}|${symbol}`);
    return signal ? `${signal.direction} ${Number(signal.strength).toFixed(2)} (conf ${Number(signal.confidence).toFixed(2)})` : "";
  }));
  Plotly.react("signals-chart", [{
    type: "heatmap", x: symbols, y: agents, z, text, hoverinfo: "x+y+text", zmin: -1, zmax: 1,
    colorscale: [[0, "#ff5c5c"], [0.5, "#263049"], [1, "#2ecc71"]], xgap: 3, ygap: 3,
  }], chartLayout({
    margin: { l: 20, r: 20, t: 10, b: 35 },
    xaxis: { showgrid: false, automargin: true },
    yaxis: { showgrid: false, automargin: true },
  }), { displayModeBar: false, responsive: true });
}

// The price chart of one symbol: candles, the account's fills as markers, resting orders as
// lines at their limit or trigger price.
function renderPrice() {
  const { symbol, bars, fills, open } = state.price;
  if (!symbol) return;
  renderPriceSoon.cancel();  // this draw has the ticks
  const marker = (side, symbolShape, color) => {
    const mine = fills.filter((f) => f.side === side);
    return {
      type: "scatter", mode: "markers", name: side === "buy" ? "buys" : "sells",
      x: mine.map((f) => new Date(f.ts)), y: mine.map((f) => Number(f.price)),
      text: mine.map((f) => `${f.side} ${qty(f.quantity)} @ ${money(f.price)}`), hoverinfo: "text+x",
      customdata: mine.map((f) => f.id),
      marker: { symbol: symbolShape, size: 10, color, line: { color: "#0f1420", width: 1 } },
    };
  };
  const xs = bars.map((b) => new Date(b.start));
  const lines = open.map((o) => ({
    type: "line", xref: "paper", x0: 0, x1: 1, y0: Number(o.limit_price || o.stop_price),
    y1: Number(o.limit_price || o.stop_price), line: { color: o.side === "buy" ? "#2ecc71" : "#ff5c5c", dash: "dot", width: 1 },
  }));
  const shown = fills.filter((f) => undrawnFills.delete(f.id)).map((f) => f.id);
  Plotly.react("price-chart", [
    { type: "candlestick", name: symbol, x: xs, open: bars.map((b) => Number(b.open)), high: bars.map((b) => Number(b.high)),
      low: bars.map((b) => Number(b.low)), close: bars.map((b) => Number(b.close)),
      increasing: { line: { color: "#2ecc71" } }, decreasing: { line: { color: "#ff5c5c" } } },
    marker("buy", "triangle-up", "#2ecc71"),
    marker("sell", "triangle-down", "#ff5c5c"),
  ], chartLayout({
    shapes: lines, showlegend: false,
    xaxis: { gridcolor: "#263049", automargin: true, rangeslider: { visible: false } },
    yaxis: { gridcolor: "#263049", tickformat: ",.2f", automargin: true },
  }), { displayModeBar: false, responsive: true }).then(() => shown.forEach((id) => markFill("drawn", id)));
  document.getElementById("price-chart").dataset.symbol = symbol;
}

// Ticks arrive up to ten a second per symbol, and a portfolio event with every batch that moves
// the books (a dozen a second while the agents trade): the live candle, the figures and the
// equity chart are redrawn at most four times a second, with the newest data, so that the page
// keeps up and a fill's marker (drawn at once) never waits behind a queue of redraws.
function coalesced(draw, milliseconds) {
  let timer = null;
  let latest = [];
  const soon = (...args) => {
    latest = args;
    if (timer === null) timer = setTimeout(() => { timer = null; draw(...latest); }, milliseconds);
  };
  soon.cancel = () => { if (timer !== null) { clearTimeout(timer); timer = null; } };
  return soon;
}
const renderPriceSoon = coalesced(() => renderPrice(), 250);
const renderPortfolioSoon = coalesced(renderPortfolio, 250);

// User Timing marks of a fill's way to its chart: "fill-received <id>" when the event stream
// delivers it, "fill-drawn <id>" once the chart holds its marker. DevTools' performance panel
// shows them, and the chromium test measures the dashboard's latency with them. Only the
// newest fills' marks are kept, so that a page open for days does not grow.
const FILL_MARKS_KEPT = 200;
const markedFills = [];
const undrawnFills = new Set();
function markFill(stage, id) {
  performance.mark(`fill-${stage} ${id}`);
  if (stage !== "received") return;
  markedFills.push(id);
  while (markedFills.length > FILL_MARKS_KEPT) {
    const old = markedFills.shift();
    performance.clearMarks(`fill-received ${old}`);
    performance.clearMarks(`fill-drawn ${old}`);
  }
}

// The order events of the charted symbol heard while loadPrice's requests run: replayed in
// order over the fetched resting orders, since the fetch may predate any of them (an order
// canceled meanwhile would come back, one placed meanwhile would be missing). Replaying one
// the fetch already reflects is harmless: a later event of the same order follows it.
let ordersHeardWhileLoading = null;

function withOrderEvent(open, order) {
  const others = open.filter((o) => o.id !== order.id);
  const resting = order.status === "new" || order.status === "partially_filled";
  return resting && (order.limit_price || order.stop_price) ? [...others, order] : others;
}

async function loadPrice() {
  const symbol = state.price.symbol;
  if (!symbol) return;
  const heard = [];
  ordersHeardWhileLoading = heard;
  const path = encodeURIComponent(symbol);
  const [minutes, fills, open] = await Promise.all([
    api(`/v1/bars/${path}?interval=1m&limit=240`), api(`/v1/fills?symbol=${path}&limit=500`),
    api(`/v1/orders?symbol=${path}&status=new&limit=200`),
  ]);
  // A young market has few minutes to show: 1-second candles until it has 20.
  const bars = minutes.length >= 20 ? minutes : await api(`/v1/bars/${path}?interval=1s&limit=600`);
  if (symbol !== state.price.symbol) return;  // the picker moved on meanwhile
  if (ordersHeardWhileLoading === heard) ordersHeardWhileLoading = null;
  // Fills the event stream delivered while these requests ran stay on the chart.
  const fetched = new Set(fills.map((f) => f.id));
  fills.unshift(...state.price.fills.filter((f) => !fetched.has(f.id)));
  const seconds = minutes.length >= 20 ? 60 : 1;
  const resting = heard.reduce(withOrderEvent, open.filter((o) => o.limit_price || o.stop_price));
  Object.assign(state.price, { bars, seconds, fills, open: resting });
  $("#price-interval").textContent = minutes.length >= 20 ? "1-minute" : "1-second";
  renderPrice();
}

// The picker lists every instrument (all-market mode can have hundreds), traded ones first.
async function loadSymbols() {
  const [instruments, portfolio] = await Promise.all([api("/v1/instruments"), api("/v1/portfolio")]);
  const held = portfolio.positions.map((p) => p.symbol);
  const traded = [...new Set([...held, ...state.fills.map((f) => f.symbol)])];
  const all = [...new Set([...traded, ...instruments.map((i) => i.symbol).sort()])];
  const picker = $("#price-symbol");
  picker.replaceChildren(...all.map((symbol) => {
    const option = document.createElement("option");
    option.value = symbol; option.textContent = symbol;
    return option;
  }));
  const before = state.price.symbol;
  if (!state.price.symbol || !all.includes(state.price.symbol)) state.price.symbol = all[0] || null;
  if (tickStream && state.price.symbol !== before) streamTicks(state.price.symbol);
  picker.value = state.price.symbol || "";
}

// A live fill or order of the charted symbol lands on the chart at once.
function onPriceEvent(type, data) {
  if (data.symbol !== state.price.symbol) return;
  const price = state.price;
  if (type === "fill") {
    if (price.fills.some((f) => f.id === data.id)) return;
    markFill("received", data.id);
    undrawnFills.add(data.id);
    price.fills.unshift(data);
  } else {
    if (ordersHeardWhileLoading !== null) ordersHeardWhileLoading.push(data);
    price.open = withOrderEvent(price.open, data);
  }
  renderPrice();
}

// The symbol's ticks (its newest per ingest batch) move the last candle or open the next one.
function onTick(tick) {
  const price = state.price;
  if (tick.symbol !== price.symbol || !price.seconds) return;
  const value = Number(tick.last);
  const width = price.seconds * 1000;
  const start = Math.floor(new Date(tick.ts).getTime() / width) * width;
  const last = price.bars[price.bars.length - 1];
  const lastStart = last ? new Date(last.start).getTime() : -Infinity;
  if (start === lastStart) {
    Object.assign(last, { high: Math.max(Number(last.high), value), low: Math.min(Number(last.low), value), close: value });
  } else if (start > lastStart) {
    price.bars.push({ start: new Date(start).toISOString(), open: value, high: value, low: value, close: value });
  } else {
    return;  // older than the chart's last candle: /v1/bars already has it
  }
  const chart = document.getElementById("price-chart");
  chart.dataset.ticks = String(Number(chart.dataset.ticks || 0) + 1);
  renderPriceSoon();
}

// --- state changes ------------------------------------------------------------------------

function addSignal(signal) {
  state.signals.unshift(signal);
  state.signals.length = Math.min(state.signals.length, MAX_ROWS);
  const key = `${signal.agent}|${signal.symbol}`;
  const known = state.latest.get(key);
  if (!known || known.created_at <= signal.created_at) state.latest.set(key, signal);
}

function upsert(list, ids, item) {
  const index = list.findIndex((existing) => existing.id === item.id);
  if (index >= 0) list[index] = item; else list.unshift(item);
  ids.add(item.id);
  list.length = Math.min(list.length, MAX_ROWS);
}

// Order, fill, portfolio and risk events carry the account's sequence number: one more per
// event. A jump means events were missed (a reconnect, an outage), so the views are re-read;
// a number seen before (a retried publication) is dropped.
function checkSequence(seq) {
  if (seq === undefined) return true;
  if (state.seq !== undefined && seq <= state.seq) return false;
  if (state.seq !== undefined && seq !== state.seq + 1) {
    console.warn(`event sequence jumped from ${state.seq} to ${seq}: resyncing`);
    reloadTables().catch(() => {}); refreshPortfolio().catch(() => {}); refreshRisk().catch(() => {});
  }
  state.seq = seq;
  $("#sequence").textContent = `seq ${seq}`;
  return true;
}

function onEvent(type, data) {
  if (!checkSequence(data.seq)) return;
  if (type === "signal") { addSignal(data); renderSignals(); }
  else if (type === "order") { upsert(state.orders, state.orderIds, data); renderOrders(); onPriceEvent(type, data); }
  else if (type === "fill") { onPriceEvent(type, data); upsert(state.fills, state.fillIds, data); renderFills(); refreshPortfolio(); }
  else if (type === "portfolio") { renderPortfolioSoon(data); }
  else if (type === "risk") { refreshRisk(); }
}

// --- loading ------------------------------------------------------------------------------

const percent = (fraction) => (fraction == null ? "–" : `${(Number(fraction) * 100).toFixed(2)} %`);
const day = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "–");

async function openReport(backtest) {
  // The report needs the bearer token, which a plain link cannot carry: fetch it, then open
  // the self-contained page (plotly inlined) from a blob.
  const response = await fetch(backtest.report, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) throw new ApiError(response.status, response.statusText);
  const page = URL.createObjectURL(new Blob([await response.text()], { type: "text/html" }));
  window.open(page, "_blank", "noopener");
}

function renderBacktests(backtests) {
  $("#backtests-empty").hidden = backtests.length > 0;
  const body = document.getElementById("backtests");
  body.replaceChildren(...backtests.slice(0, MAX_ROWS).map((b) => {
    const tr = document.createElement("tr");
    tr.dataset.name = b.name;
    if (b.slice != null) tr.dataset.slice = String(b.slice);
    if (b.trial != null) tr.dataset.trial = String(b.trial);
    // A BacktestRun split by spec.parallelism, or with a spec.grid: one row per slice or
    // trial, each its own backtest.
    const part = b.trial != null ? ` · trial ${b.trial}` : b.slice != null ? ` · slice ${b.slice}` : "";
    const title = `${b.name}${part}`;
    const cells = b.error
      ? [[title], [day(b.finished_at)], [b.error, "neg"], [""], [""], [""], [""], [""], [""]]
      : [
          [title], [day(b.finished_at)], [`${day(b.data_from)} → ${day(b.data_to)}`], [b.symbols.join(" ")],
          [percent(b.total_return), signClass(b.total_return)], [b.sharpe ?? "–"],
          [percent(b.max_drawdown), "neg"], [String(b.trades ?? "–")], [b.fees == null ? "–" : money(b.fees)],
        ];
    for (const [text, className] of cells) tr.appendChild(cell(text, className));
    const link = document.createElement("td");
    if (b.report) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "open";
      button.addEventListener("click", () => openReport(b).catch((error) => console.warn(error)));
      link.appendChild(button);
    }
    tr.appendChild(link);
    return tr;
  }));
}

async function refreshBacktests() { renderBacktests(await api("/v1/backtests")); }

async function refreshPortfolio() { renderPortfolio(await api("/v1/portfolio")); }
async function refreshRisk() { renderRisk(await api("/v1/risk")); }
async function refreshAgents() {
  const agents = await api("/v1/agents");
  renderAgents(agents);
  state.agentList = agents;
}

async function refreshAgentStats() {
  const agents = state.agentList || await api("/v1/agents");
  const stats = await Promise.all(agents.map((a) => api(`/v1/agents/${encodeURIComponent(a.name)}/stats`).catch(() => null)));
  agents.forEach((a, i) => { if (stats[i]) state.agentStats.set(a.name, stats[i]); });
  renderAgents(agents);
  document.getElementById("agents").dataset.stats = String(state.agentStats.size);
}

async function loadHistory() {
  state.history = await api("/v1/portfolio/history?interval=1s");
  document.body.dataset.historyPoints = String(state.history.length);
}

async function reloadTables() {
  const [orders, fills, signals] = await Promise.all([
    api("/v1/orders?limit=1000"), api("/v1/fills?limit=1000"), api("/v1/signals?limit=500"),
  ]);
  for (const order of orders) state.orderIds.add(order.id);
  for (const fill of fills) state.fillIds.add(fill.id);
  state.orders = orders.slice(0, MAX_ROWS);
  state.fills = fills.slice(0, MAX_ROWS);
  state.signals = [];
  for (const signal of [...signals].reverse()) addSignal(signal);
  renderOrders(); renderFills(); renderSignals();
}

function every(seconds, task) {
  const run = () => task().catch((error) => console.warn(error));
  run();
  return setInterval(run, seconds * 1000);
}

function setConnection(live) {
  const badge = $("#connection");
  badge.dataset.state = live ? "live" : "off";
  badge.textContent = live ? "live" : "reconnecting…";
}

function parseFrame(frame) {
  let type = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue;  // subscribed / keep-alive comments
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (data.length) onEvent(type, JSON.parse(data.join("\n")));
}

// Read an SSE stream of the API with fetch until it ends (or ``signal`` aborts it).
async function readStream(path, onFrame, signal) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store", signal });
  if (response.status === 401) { signOut("the token was refused"); return false; }
  if (!response.ok) throw new ApiError(response.status, response.statusText);
  setConnection(true);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return true;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      onFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

async function streamEvents() {
  for (;;) {
    try {
      if (!await readStream("/v1/events", parseFrame)) return;
    } catch (error) {
      console.warn("event stream:", error);
    }
    setConnection(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    reloadTables().catch(() => {});  // catch up on whatever the gap missed
  }
}

// The charted symbol's ticks, on a stream of their own: a new symbol opens a new stream.
let tickStream = null;
function streamTicks(symbol) {
  if (tickStream) tickStream.abort();
  if (!symbol) return;
  const controller = tickStream = new AbortController();
  const path = `/v1/events?types=tick&symbol=${encodeURIComponent(symbol)}`;
  const onFrame = (frame) => {
    const data = frame.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart());
    if (data.length) onTick(JSON.parse(data.join("\n")));
  };
  (async () => {
    while (!controller.signal.aborted) {
      try {
        if (!await readStream(path, onFrame, controller.signal)) return;
      } catch (error) {
        if (controller.signal.aborted) return;
        console.warn("tick stream:", error);
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
      loadPrice().catch(() => {});  // the candles the gap missed
    }
  })();
}

// --- risk control -------------------------------------------------------------------------

async function setRiskState(target) {
  const admin = $("#admin-token").value.trim();
  const message = $("#risk-message");
  message.className = "muted";
  if (!admin) {
    message.textContent = "Enter the admin token first.";
    message.className = "error";
    $("#admin-token").focus();
    return;
  }
  try {
    const reason = target === "HALTED" ? "dashboard: manual halt" : "dashboard: resumed";
    const risk = await api("/v1/risk/state", { method: "PUT", token: admin, body: { state: target, reason } });
    renderRisk(risk);
    message.textContent = `Risk state is now ${risk.state}.`;
  } catch (error) {
    message.textContent = error.message;
    message.className = "error";
  }
}

// --- start --------------------------------------------------------------------------------

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#main").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = reason || "";
}

async function start(token) {
  state.token = token;
  try {
    renderRisk(await api("/v1/risk"));
  } catch (error) {
    signOut(error.status === 401 ? "That token was refused." : error.message);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#login").hidden = true;
  $("#main").hidden = false;
  await Promise.all([reloadTables(), loadHistory()].map((p) => p.catch((error) => console.warn(error))));
  renderHeatmap();
  streamEvents();
  every(2, refreshPortfolio);
  every(5, refreshAgents);
  every(10, refreshAgentStats);
  await loadSymbols().catch((error) => console.warn(error));
  streamTicks(state.price.symbol);  // the live candle; fills and orders arrive on the event stream
  every(60, loadPrice);  // closed candles from /v1/bars (and a switch from 1-second to 1-minute)
  every(60, loadSymbols);
  every(2, refreshRisk);
  every(30, reloadTables);
  every(30, refreshBacktests);
  setInterval(renderHeatmap, 1000);
  document.body.dataset.ready = "true";
}

function tokenFromFragment() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!match) return null;
  // Take the token out of the address bar and the history at once.
  history.replaceState(null, "", location.pathname + location.search);
  return decodeURIComponent(match[1]);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#halt").addEventListener("click", () => setRiskState("HALTED"));
  $("#resume").addEventListener("click", () => setRiskState("ACTIVE"));
  $("#price-symbol").addEventListener("change", (event) => {
    state.price = { symbol: event.target.value, fills: [], open: [], bars: [] };
    undrawnFills.clear();
    loadPrice().catch((error) => console.warn(error));
    streamTicks(state.price.symbol);
  });
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    if (token) start(token);
  });
  const token = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
  if (token) start(token); else signOut();
});
