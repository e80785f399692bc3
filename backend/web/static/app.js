// The live dashboard: history from /api/signals, live signals over Socket.IO, gap-free recovery; the scan's
// candles with indicator lines and signal markers; each signal's outcomes and the strategies' stats.
import { CandleChart } from "./chart.js";
import {
  cell, formatAxisPrice, formatPrice, formatReturn, formatTime, parseTime, plural, signClass, text,
} from "./format.js";
import { renderStats } from "./stats.js";

const STORE = {
  token: "qs.token", symbols: "qs.symbols", notify: "qs.notify", sound: "qs.sound",
  chart: "qs.chart", statsEpoch: "qs.statsEpoch",
};
const MAX_SIGNALS = 1000; // kept in memory and listed; older ones drop off the bottom
const HISTORY_LIMIT = 500;
const BULK_RENDER = 40; // more new rows than this in one batch: rebuild the table
// The contract's symbol and timeframe rules, as the server renders them (backend/contract.py): no copy here.
const RULES = document.querySelector(".chart-section").dataset;
const SYMBOL_RE = new RegExp(RULES.symbolPattern); // the filter's chips, the chart
const TIMEFRAME_RE = new RegExp(RULES.timeframePattern);
const CANDLE_LIMIT = 300;
const CANDLE_POLL_MS = 3000; // candles re-fetched (ETag: mostly a 304) this often while the chart shows some
const CANDLE_RETRY_MS = 15000; // and this often while the scan does not cover the pair
const PICKER_SHOWN = 50; // options listed at once; typing narrows the rest
const MAX_OUTCOMES = 20000; // signal outcomes kept in memory
const STATS_DELAY_MS = 500; // outcomes come in bursts (one per signal and horizon): one stats fetch per burst
// A late signal is marked unscored by the worker within a second of its arrival, with no event: looked up then.
const UNSCORED_CHECK_MS = 2500;
const DEFAULT_HORIZONS = [1, 5, 20];

const $ = (id) => document.getElementById(id);
const el = {
  status: $("status"), statusText: $("status-text"), alert: $("alert"),
  tokenForm: $("token-form"), token: $("token"),
  symbolList: $("symbol-list"), symbolForm: $("symbol-form"), symbolInput: $("symbol-input"),
  symbolAll: $("symbol-all"), notify: $("notify-toggle"), sound: $("sound-toggle"),
  chartSection: document.querySelector(".chart-section"), chartBox: $("chart"), chartTitle: $("chart-title"),
  chartNote: $("chart-note"), legend: $("chart-legend"),
  picker: $("chart-symbol"), pickerOptions: $("chart-symbol-options"), timeframe: $("chart-timeframe"),
  details: $("details"), detailsFields: $("details-fields"), detailsOutcomes: $("details-outcomes"),
  detailsIndicators: $("details-indicators"),
  statsNote: $("stats-note"), statsBody: $("stats-body"),
  table: $("signals"), priceHeading: $("price-heading"),
  rows: $("signal-rows"), count: $("signal-count"), signalsEmpty: $("signals-empty"),
};
const words = (value) => (value || "").split(/\s+/).filter(Boolean);
const scan = {
  symbols: words(el.chartSection.dataset.scanSymbols).filter((s) => SYMBOL_RE.test(s)),
  timeframes: words(el.chartSection.dataset.scanTimeframes).filter((t) => TIMEFRAME_RE.test(t)),
};

const state = {
  token: read(STORE.token, ""),
  selected: new Set(readJSON(STORE.symbols, []).filter((s) => SYMBOL_RE.test(s))), // empty: all
  known: new Set(),
  entries: [], // newest first
  seen: new Set(), // "s:<epoch>:<seq>" of numbered signals, "u:<id>" of unnumbered ones
  cursor: { epoch: null, seq: 0 }, // the Socket.IO replay cursor
  sentSince: false,
  arrivals: 0,
  socket: null,
  pending: [],
  flushTimer: null,
  byKey: new Map(), // entry key -> entry, for rows, markers and outcomes
  horizons: DEFAULT_HORIZONS,
  outcomes: new Map(), // "s:<epoch>:<seq>" -> {"<h>": r}
  statsEpoch: read(STORE.statsEpoch, ""),
  statsTimer: null,
  unscoredTimer: null,
  selectedKey: null, // the signal in the details panel
  chartSymbols: new Set(scan.symbols), // what the chart's picker lists: the scan's symbols, then any seen
  timeframes: new Set(scan.timeframes),
  view: { symbol: "", timeframe: "", etag: null, timer: null, generation: 0, mode: null },
  chart: null,
  audio: null,
  loading: 0, // history requests in flight
  generation: 0, // bumps on every restart, so late history responses of an old session are ignored
};

// ---------- storage ----------
function read(key, fallback) {
  try { return localStorage.getItem(key) ?? fallback; } catch { return fallback; }
}
function readJSON(key, fallback) {
  try { return JSON.parse(read(key, "null")) ?? fallback; } catch { return fallback; }
}
function write(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: settings last for this page only */ }
}

// ---------- status and errors ----------
const STATUS_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

function setStatus(name, detail) {
  el.status.dataset.state = name;
  el.statusText.textContent = detail ? `${STATUS_TEXT[name]} — ${detail}` : STATUS_TEXT[name];
}

function showAlert(message, detail) {
  el.alert.textContent = message;
  if (detail) {
    const small = document.createElement("small");
    small.textContent = `Server said: ${detail}`;
    el.alert.append(small);
  }
  el.alert.hidden = false;
}

function clearAlert() {
  el.alert.hidden = true;
  el.alert.textContent = "";
}

function unauthorized(detail) {
  setStatus("offline", "unauthorized");
  showAlert(state.token
    ? "Access denied: the access token is not valid. Enter a valid token and press Connect."
    : "Access denied: this server requires an access token. Enter it and press Connect.", detail);
  el.token.focus();
}

// ---------- signals ----------
function visible(entry) {
  return state.selected.size === 0 || state.selected.has(entry.symbol);
}

/** Take one signal from history or the socket; false when it is a duplicate. */
function accept(sig, live) {
  if (!sig || typeof sig !== "object") return false;
  const hasSeq = typeof sig.epoch === "string" && sig.epoch && Number.isInteger(sig.seq);
  if (live && hasSeq && sig.epoch === state.cursor.epoch && sig.seq > state.cursor.seq) {
    state.cursor.seq = sig.seq; // even for a duplicate: the cursor follows the stream
  }
  // A numbered signal is itself by (epoch, seq) only; an id is the duplicate test among unnumbered ones only,
  // so an unnumbered message (anyone may PUBLISH on the channel) carrying a real signal's id hides nothing.
  const key = hasSeq ? `s:${sig.epoch}:${sig.seq}` : typeof sig.id === "string" && sig.id ? `u:${sig.id}` : null;
  if (key && state.seen.has(key)) return false;
  if (key) state.seen.add(key);

  const received = Date.now();
  const barMs = parseTime(sig.bar_time);
  const emittedMs = parseTime(sig.emitted_at);
  const t = Number.isFinite(emittedMs) ? emittedMs : Number.isFinite(barMs) ? barMs : received;
  const symbol = typeof sig.symbol === "string" ? sig.symbol : null;
  const entry = {
    sig, symbol, t, live,
    order: ++state.arrivals,
    key: key || `r:${state.arrivals}`,
    chartTime: Math.floor((Number.isFinite(barMs) ? barMs : t) / 1000),
    onBar: Number.isFinite(barMs), // a marker needs the bar the signal fired on
    row: null,
  };
  state.byKey.set(entry.key, entry);
  state.pending.push(entry);
  if (!state.flushTimer) state.flushTimer = setTimeout(flush, 0);
  return true;
}

/** Newest first: by time, then seq, then arrival. */
function newer(a, b) {
  if (a.t !== b.t) return a.t > b.t;
  const as = Number.isInteger(a.sig.seq) ? a.sig.seq : -1;
  const bs = Number.isInteger(b.sig.seq) ? b.sig.seq : -1;
  if (as !== bs) return as > bs;
  return a.order > b.order;
}

function insertionIndex(entry) {
  let lo = 0, hi = state.entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (newer(entry, state.entries[mid])) hi = mid; else lo = mid + 1;
  }
  return lo;
}

function flush() {
  state.flushTimer = null;
  const batch = state.pending;
  state.pending = [];
  if (!batch.length) return;
  let symbolsChanged = false;
  for (const entry of batch) {
    state.entries.splice(insertionIndex(entry), 0, entry);
    if (entry.symbol) {
      if (SYMBOL_RE.test(entry.symbol) && !state.known.has(entry.symbol)) {
        state.known.add(entry.symbol);
        symbolsChanged = true;
      }
      if (SYMBOL_RE.test(entry.symbol)) state.chartSymbols.add(entry.symbol);
    }
    const tf = entry.sig.timeframe;
    if (typeof tf === "string" && TIMEFRAME_RE.test(tf) && !state.timeframes.has(tf)) {
      state.timeframes.add(tf);
      renderTimeframes();
    }
  }
  for (const dropped of state.entries.splice(MAX_SIGNALS)) {
    if (dropped.row) dropped.row.remove();
    dropped.row = undefined; // marks it dropped
    state.byKey.delete(dropped.key);
  }
  const kept = batch.filter((e) => e.row === null && visible(e));
  if (kept.length > BULK_RENDER) renderTable();
  else kept.forEach(insertRow);
  updateCounts();
  if (symbolsChanged) renderSymbolList();
  if (!state.view.symbol) {
    const first = batch.find((e) => e.symbol && SYMBOL_RE.test(e.symbol) && visible(e));
    if (first) showChart(first.symbol, first.sig.timeframe);
  } else if (batch.some(onChart)) {
    drawMarkers();
    if (batch.some((e) => e.live && onChart(e))) scheduleCandles(300); // its bar has closed: fetch it now
  }
  if (batch.some((e) => e.live)) {
    scheduleStats(); // the signal counts changed
    if (!state.unscoredTimer) {
      state.unscoredTimer = setTimeout(() => { state.unscoredTimer = null; loadOutcomes(100); }, UNSCORED_CHECK_MS);
    }
  }
  alertFor(batch.filter((e) => e.live && visible(e)));
}

function makeRow(entry) {
  const { sig } = entry;
  const tr = document.createElement("tr");
  tr.dataset.key = entry.key;
  const kind = sig.type === "BUY" || sig.type === "SELL" ? sig.type : null;
  if (kind) tr.classList.add(kind.toLowerCase());

  const time = document.createElement("time");
  time.dateTime = new Date(entry.t).toISOString();
  time.textContent = formatTime(entry.t);
  time.title = sig.bar_time ? `bar ${text(sig.bar_time)} · emitted ${text(sig.emitted_at) || "?"}` : time.dateTime;

  const badge = document.createElement("span");
  badge.className = `badge ${kind ? kind.toLowerCase() : ""}`;
  badge.textContent = text(sig.type);

  const symbolCell = [document.createTextNode(entry.symbol || "—")];
  if (sig.timeframe) {
    const tf = document.createElement("span");
    tf.className = "tf";
    tf.textContent = text(sig.timeframe);
    symbolCell.push(tf);
  }

  const cells = [
    ["Time", [time]],
    ["Symbol", symbolCell],
    ["Signal", [badge]],
    ["Price", [formatPrice(sig.price)], "num"],
    ...state.horizons.map((h) => [`+${h}`, [], "num outcome"]),
    ["Strategy", [text(sig.strategy) || "—"], "strategy"],
    ["Reason", [text(sig.reason)], "reason"],
  ];
  for (const [label, content, cls] of cells) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (cls) td.className = cls;
    td.append(...content);
    tr.append(td);
  }
  tr.tabIndex = 0; // a row opens its details, by click or Enter
  if (entry.key === state.selectedKey) tr.classList.add("selected");
  if (entry.live && !entry.flashed) tr.classList.add("fresh"); // once, not on every rebuild
  entry.flashed = true;
  entry.row = tr;
  fillOutcomes(entry);
  return tr;
}

function insertRow(entry) {
  const index = state.entries.indexOf(entry);
  let next = null;
  for (let i = index + 1; i < state.entries.length; i++) {
    if (state.entries[i].row) { next = state.entries[i].row; break; }
  }
  el.rows.insertBefore(makeRow(entry), next);
}

function renderTable() {
  const fragment = document.createDocumentFragment();
  for (const entry of state.entries) {
    entry.row = null;
    if (visible(entry)) fragment.append(makeRow(entry));
  }
  el.rows.replaceChildren(fragment);
}

function updateCounts() {
  const n = el.rows.childElementCount;
  el.count.textContent = n ? `(${n})` : "";
  el.signalsEmpty.hidden = n > 0;
}

// ---------- alerts: notifications and sound ----------
function alertFor(entries) {
  if (!entries.length) return;
  if (el.sound.checked) beep(entries[0].sig.type);
  if (!el.notify.checked || !("Notification" in window) || Notification.permission !== "granted") return;
  const describe = (e) => `${text(e.sig.type)} ${e.symbol || ""} @ ${formatPrice(e.sig.price)}`.replace(/ +/g, " ");
  try {
    if (entries.length <= 3) {
      for (const e of entries) {
        new Notification(describe(e), { body: text(e.sig.strategy || e.sig.reason), tag: e.key });
      }
    } else {
      new Notification(`${entries.length} new signals`, { body: entries.slice(0, 5).map(describe).join("\n") });
    }
  } catch { /* some mobile browsers only notify from a service worker */ }
}

function audioContext() {
  if (!state.audio) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    state.audio = new Ctx();
  }
  if (state.audio.state === "suspended") state.audio.resume().catch(() => {});
  return state.audio;
}

function beep(kind) {
  const ctx = audioContext();
  if (!ctx) return;
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = "sine";
  osc.frequency.value = kind === "SELL" ? 440 : 880;
  const now = ctx.currentTime;
  gain.gain.setValueAtTime(0.0001, now);
  gain.gain.exponentialRampToValueAtTime(0.2, now + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.2);
  osc.connect(gain).connect(ctx.destination);
  osc.start(now);
  osc.stop(now + 0.21);
}

// ---------- outcomes ----------
function outcomeKey(o) {
  return `s:${o.epoch}:${o.seq}`;
}

/** Take one outcome ({epoch, seq, id, h, r}, or {epoch, seq, id, unscored}) from /api/outcomes or `signal_outcome`. */
function applyOutcome(o) {
  if (!o || typeof o.epoch !== "string" || !Number.isInteger(o.seq)) return;
  const unscored = typeof o.unscored === "string";
  if (!unscored && (!Number.isInteger(o.h) || typeof o.r !== "number" || !Number.isFinite(o.r))) return;
  const key = outcomeKey(o);
  let scores = state.outcomes.get(key);
  if (!scores) {
    scores = {};
    state.outcomes.set(key, scores);
    if (state.outcomes.size > MAX_OUTCOMES) state.outcomes.delete(state.outcomes.keys().next().value);
  }
  if (unscored) scores.unscored = o.unscored;
  else scores[o.h] = o.r;
  const entry = state.byKey.get(key);
  if (!entry) return;
  fillOutcomes(entry);
  if (entry.key === state.selectedKey) showDetails(entry);
}

/** Whether the scan scores this signal: numbered, with its pair, strategy and bar. */
function scored(sig) {
  return typeof sig.epoch === "string" && Number.isInteger(sig.seq) && typeof sig.strategy === "string"
    && typeof sig.symbol === "string" && typeof sig.bar_time === "string";
}

function fillOutcomes(entry) {
  if (!entry.row) return;
  const scores = state.outcomes.get(entry.key) || {};
  const cells = entry.row.querySelectorAll("td.outcome");
  state.horizons.forEach((h, i) => fillOutcome(cells[i], h, scores[h], scored(entry.sig), scores.unscored));
}

function fillOutcome(cell, h, r, pending, unscored) {
  if (!cell) return;
  cell.classList.remove("up", "down", "flat", "pending", "unscored");
  delete cell.dataset.r;
  if (typeof unscored === "string") {
    cell.textContent = "late";
    cell.classList.add("unscored");
    cell.title = `not scored: ${unscored}`;
  } else if (typeof r === "number") {
    cell.dataset.r = String(r); // the exact value, for tests and tools
    cell.textContent = formatReturn(r);
    cell.classList.add(signClass(r));
    cell.title = `return ${plural(h, "bar")} after the signal, in its direction`;
  } else {
    cell.textContent = pending ? "…" : "—";
    if (pending) cell.classList.add("pending");
    cell.title = pending ? `scored when bar +${h} closes` : "not scored: not a numbered scan signal";
  }
}

/** New horizons from the API: the table's outcome columns follow. */
function setHorizons(horizons) {
  if (!Array.isArray(horizons) || !horizons.every((h) => Number.isInteger(h) && h > 0)) return;
  if (horizons.join() === state.horizons.join() && el.table.querySelector("th.outcome")) return;
  state.horizons = horizons;
  el.table.querySelectorAll("thead th.outcome").forEach((th) => th.remove());
  el.priceHeading.after(...horizons.map((h) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.className = "num outcome";
    th.textContent = `+${h}`;
    th.title = `return ${plural(h, "bar")} after the signal`;
    return th;
  }));
  renderTable();
}

async function loadOutcomes(limit = 1000) {
  const generation = state.generation;
  const body = await getJSON(`/api/outcomes?limit=${limit}`, "outcomes");
  if (!body || generation !== state.generation) return;
  setHorizons(body.horizons);
  (body.outcomes || []).forEach(applyOutcome);
}

// ---------- stats ----------
function scheduleStats() {
  if (!state.statsTimer) state.statsTimer = setTimeout(loadStats, STATS_DELAY_MS);
}

async function loadStats() {
  clearTimeout(state.statsTimer);
  state.statsTimer = null;
  const generation = state.generation;
  const body = await getJSON("/api/stats", "stats");
  if (!body || generation !== state.generation) return;
  setHorizons(body.horizons);
  if (typeof body.epoch === "string" && body.epoch) {
    if (state.statsEpoch && state.statsEpoch !== body.epoch) {
      el.statsNote.textContent = "Stats restarted: the server's history was reset (Redis lost its data), so "
        + "these count only the signals since then.";
    }
    state.statsEpoch = body.epoch;
    write(STORE.statsEpoch, body.epoch);
  }
  renderStats(el.statsBody, Array.isArray(body.stats) ? body.stats : [], state.horizons, body);
}

// ---------- signal details ----------
function select(entry, follow) {
  if (state.selectedKey) {
    const old = state.byKey.get(state.selectedKey);
    if (old && old.row) old.row.classList.remove("selected");
  }
  state.selectedKey = entry.key;
  if (entry.row) entry.row.classList.add("selected");
  showDetails(entry);
  if (follow && entry.symbol && SYMBOL_RE.test(entry.symbol)
      && (entry.symbol !== state.view.symbol || (entry.sig.timeframe && entry.sig.timeframe !== state.view.timeframe))) {
    showChart(entry.symbol, entry.sig.timeframe);
  }
}

function definitions(list, pairs) {
  list.replaceChildren(...pairs.flatMap(([term, value, cls]) => {
    const dd = cell("dd", value);
    if (cls) dd.className = cls;
    return [cell("dt", term), dd];
  }));
}

function showDetails(entry) {
  const { sig } = entry;
  el.details.hidden = false;
  el.details.dataset.key = entry.key;
  definitions(el.detailsFields, [
    ["Signal", text(sig.type), `badge ${sig.type === "BUY" ? "buy" : sig.type === "SELL" ? "sell" : ""}`],
    ["Symbol", `${entry.symbol || "—"} ${text(sig.timeframe)}`.trim()],
    ["Price", formatPrice(sig.price)],
    ["Strategy", text(sig.strategy) || "—", "strategy"],
    ["Bar (UTC)", text(sig.bar_time) || "—"],
    ["Reason", text(sig.reason) || "—", "reason"],
    ["Source", text(sig.source) || "—"],
  ]);
  const scores = state.outcomes.get(entry.key) || {};
  definitions(el.detailsOutcomes, state.horizons.map((h) => {
    const r = scores[h];
    if (typeof r === "number") return [`+${h}`, formatReturn(r), signClass(r)];
    if (typeof scores.unscored === "string") return [`+${h}`, `not scored: ${scores.unscored}`, "pending"];
    return [`+${h}`, scored(sig) ? "waiting for the bar to close" : "not scored", "pending"];
  }));
  const indicators = sig.indicators && typeof sig.indicators === "object" ? Object.entries(sig.indicators) : [];
  definitions(el.detailsIndicators, indicators.length
    ? indicators.map(([name, value]) => [name, typeof value === "number" ? formatPrice(value) : text(value)])
    : [["—", "none sent"]]);
}

// ---------- the chart ----------
function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function theme() {
  return {
    panel: css("--panel"), muted: css("--muted"), grid: css("--grid"), border: css("--border"), line: css("--line"),
    buy: css("--buy"), sell: css("--sell"), font: getComputedStyle(document.body).fontFamily,
    lines: [0, 1, 2, 3, 4, 5, 6, 7].map((i) => css(`--line-${i}`)),
  };
}

/** A signal drawn on the chart: its pair, its timeframe (when it says), its bar. */
function onChart(entry) {
  const tf = entry.sig.timeframe;
  return entry.onBar && entry.symbol === state.view.symbol && (!tf || tf === state.view.timeframe);
}

function drawMarkers() {
  if (!state.chart) return;
  const entries = state.entries.filter(onChart);
  if (state.view.mode === "signals") {
    const points = new Map();
    for (let i = entries.length - 1; i >= 0; i--) { // oldest first: the latest price of a bar wins
      if (typeof entries[i].sig.price === "number") points.set(entries[i].chartTime, entries[i].sig.price);
    }
    state.chart.showSignalPrices([...points].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value })));
  }
  state.chart.setMarkers(entries.map((e) => ({ id: e.key, time: e.chartTime, type: e.sig.type })));
  const drawn = state.chart.snapshot();
  el.chartBox.dataset.markers = String(drawn.markers.length);
}

/** Point the chart at SYMBOL and TIMEFRAME (default: the current or the scan's first) and load it. */
function showChart(symbol, timeframe) {
  const view = state.view;
  const tf = typeof timeframe === "string" && TIMEFRAME_RE.test(timeframe)
    ? timeframe : view.timeframe || scan.timeframes[0] || [...state.timeframes][0] || "1m";
  if (symbol === view.symbol && tf === view.timeframe) return;
  Object.assign(view, { symbol, timeframe: tf, etag: null, mode: null });
  view.generation++;
  state.timeframes.add(tf);
  renderTimeframes();
  write(STORE.chart, JSON.stringify({ symbol, timeframe: tf }));
  el.picker.value = symbol;
  el.chartTitle.textContent = `${symbol} · ${tf}`;
  Object.assign(el.chartBox.dataset, { symbol, timeframe: tf, state: "loading", bars: "0", markers: "0" });
  if (state.chart) state.chart.clear();
  el.legend.replaceChildren();
  el.chartNote.textContent = "Loading candles…";
  scheduleCandles(0);
}

function scheduleCandles(delay) {
  clearTimeout(state.view.timer);
  state.view.timer = setTimeout(loadCandles, delay);
}

async function loadCandles() {
  const view = state.view;
  const generation = view.generation;
  if (!view.symbol) return;
  if (document.hidden) { scheduleCandles(CANDLE_POLL_MS); return; } // resumes on visibilitychange
  const params = new URLSearchParams({ symbol: view.symbol, timeframe: view.timeframe, limit: String(CANDLE_LIMIT) });
  const headers = { ...authHeaders(), ...(view.etag ? { "If-None-Match": view.etag } : {}) };
  let next = CANDLE_POLL_MS;
  try {
    const response = await fetch(`/api/candles?${params}`, { headers, cache: "no-store" });
    if (generation !== view.generation) return; // the user picked another pair meanwhile
    if (response.status === 401) { unauthorized("GET /api/candles answered 401"); return; }
    if (response.status !== 304) {
      const body = await response.json().catch(() => ({}));
      if (generation !== view.generation) return;
      if (response.ok && Array.isArray(body.candles)) {
        view.etag = response.headers.get("ETag");
        drawCandles(body);
      } else {
        view.etag = null;
        drawWithoutCandles(body.error || `HTTP ${response.status}`);
        next = CANDLE_RETRY_MS;
      }
    } else if (view.mode !== "candles") {
      next = CANDLE_RETRY_MS;
    }
  } catch (exc) {
    if (generation !== view.generation) return;
    el.chartNote.textContent = `Could not load candles: ${exc.message}. Retrying.`;
  }
  if (generation === view.generation) scheduleCandles(next);
}

function ensureChart() {
  if (!state.chart) {
    if (!window.LightweightCharts) {
      el.chartNote.textContent = "Chart library not loaded.";
      return false;
    }
    state.chart = new CandleChart(el.chartBox, theme(), formatAxisPrice, pickOnChart);
  }
  return true;
}

function drawCandles(body) {
  if (!ensureChart()) return;
  state.view.mode = "candles";
  state.chart.showCandles(body);
  drawMarkers();
  const candles = body.candles;
  Object.assign(el.chartBox.dataset, { state: "candles", bars: String(candles.length) });
  const last = candles[candles.length - 1];
  el.chartNote.textContent = last
    ? `${candles.length} closed bars, the last opened ${formatTime(last.time)} UTC, close ${formatPrice(last.close)}. `
      + "Click a marker or a row for its details."
    : "The scan has not closed a bar of this pair yet.";
  el.legend.replaceChildren(...state.chart.legend().map((line) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch swatch-${line.swatch}`;
    li.append(swatch, `${line.name} `, cell("small", line.label === "price" ? line.spec : `${line.label} pane`));
    return li;
  }));
}

function drawWithoutCandles(reason) {
  if (!ensureChart()) return;
  state.view.mode = "signals";
  state.chart.clear();
  drawMarkers();
  Object.assign(el.chartBox.dataset, { state: "signals", bars: "0" });
  el.legend.replaceChildren();
  el.chartNote.textContent = `No candles: ${reason}. The line joins this pair's signal prices instead.`;
}

function pickOnChart(id, time) {
  const entry = (id && state.byKey.get(id)) || (time != null && state.entries.find((e) => onChart(e) && e.chartTime === time));
  if (entry) select(entry, false);
}

function renderTimeframes() {
  const wanted = [...state.timeframes];
  if (state.view.timeframe && !wanted.includes(state.view.timeframe)) wanted.push(state.view.timeframe);
  const shown = [...el.timeframe.options].map((o) => o.value);
  if (shown.join() !== wanted.join()) {
    el.timeframe.replaceChildren(...wanted.map((tf) => new Option(tf, tf)));
  }
  el.timeframe.value = state.view.timeframe;
}

// ---------- the chart's symbol picker (a filter over a list: hundreds of symbols) ----------
function pickerMatches(query) {
  const q = query.trim().toUpperCase();
  const all = [...state.chartSymbols].sort();
  if (!q || q === state.view.symbol) return all;
  const starts = all.filter((s) => s.startsWith(q));
  return starts.concat(all.filter((s) => !s.startsWith(q) && s.includes(q)));
}

function openPicker() {
  const matches = pickerMatches(el.picker.value);
  const items = matches.slice(0, PICKER_SHOWN).map((symbol, i) => {
    const li = cell("li", symbol);
    li.id = `chart-symbol-option-${i}`;
    li.setAttribute("role", "option");
    li.dataset.symbol = symbol;
    li.setAttribute("aria-selected", String(symbol === state.view.symbol));
    return li;
  });
  if (matches.length > PICKER_SHOWN) {
    const more = cell("li", `${matches.length - PICKER_SHOWN} more: keep typing`);
    more.className = "more";
    items.push(more);
  }
  if (!matches.length) items.push(Object.assign(cell("li", "No such symbol in the scan"), { className: "more" }));
  el.pickerOptions.replaceChildren(...items);
  el.pickerOptions.hidden = false;
  el.picker.setAttribute("aria-expanded", "true");
  highlight(null);
}

/** Mark OPTION (or none) as the one Enter picks; arrow keys move it. */
function highlight(option) {
  el.pickerOptions.querySelectorAll(".active").forEach((o) => o.classList.remove("active"));
  if (option) {
    option.classList.add("active");
    option.scrollIntoView({ block: "nearest" });
    el.picker.setAttribute("aria-activedescendant", option.id);
  } else {
    el.picker.removeAttribute("aria-activedescendant");
  }
}

function moveHighlight(step) {
  if (el.pickerOptions.hidden) openPicker();
  const options = [...el.pickerOptions.querySelectorAll('[role="option"]')];
  if (!options.length) return;
  const at = options.findIndex((o) => o.classList.contains("active"));
  highlight(options[Math.min(Math.max(at + step, 0), options.length - 1)]);
}

function closePicker() {
  el.pickerOptions.hidden = true;
  el.picker.setAttribute("aria-expanded", "false");
  highlight(null);
}

function choose(symbol) {
  closePicker();
  if (symbol) showChart(symbol);
  el.picker.value = state.view.symbol;
}

// ---------- the stream filter (symbol chips) ----------
function renderSymbolList() {
  const symbols = [...new Set([...state.known, ...state.selected])].sort();
  el.symbolList.replaceChildren(...symbols.map((symbol) => {
    const label = document.createElement("label");
    label.className = "chip";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = symbol;
    box.checked = state.selected.has(symbol);
    label.append(box, ` ${symbol}`);
    return label;
  }));
  if (!symbols.length) el.symbolList.textContent = "No symbols seen yet.";
  el.symbolAll.setAttribute("aria-pressed", String(state.selected.size === 0));
}

function setSelection(symbols) {
  const added = [...symbols].filter((s) => !state.selected.has(s));
  state.selected = new Set(symbols);
  write(STORE.symbols, JSON.stringify([...state.selected]));
  renderSymbolList();
  renderTable();
  updateCounts();
  if (state.selected.size && !state.selected.has(state.view.symbol)) {
    const symbol = [...state.selected].sort()[0];
    if (SYMBOL_RE.test(symbol)) showChart(symbol);
  }
  const socket = state.socket;
  if (socket && socket.connected) {
    // The connect auth carries the filter on every reconnect; this changes it for the live connection.
    socket.timeout(5000).emit("subscribe", { symbols: [...state.selected] }, (err, reply) => {
      if (err) showAlert("The server did not confirm the symbol filter; it applies on the next reconnect.");
      else if (reply && reply.error) showAlert(`Symbol filter refused: ${reply.error}`);
    });
  }
  if (!state.cursor.epoch) return; // the first welcome loads the history
  if (state.selected.size === 0) loadHistory(null); // back to all: fill what the filter kept out
  else added.forEach((s) => loadHistory(s));
}

// ---------- history and socket ----------
function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

/** GET URL as JSON; null (said in the stats note) when it failed, quietly null on 404 (nothing there yet). */
async function getJSON(url, what) {
  try {
    const response = await fetch(url, { headers: authHeaders(), cache: "no-store" });
    if (response.status === 401) { unauthorized(`GET ${url} answered 401`); return null; }
    if (response.status === 404) return null;
    const body = await response.json().catch(() => ({}));
    if (response.ok) return body;
    el.statsNote.textContent = `Could not load ${what}: ${body.error || `HTTP ${response.status}`}`;
  } catch (exc) {
    el.statsNote.textContent = `Could not load ${what}: ${exc.message}`;
  }
  return null;
}

async function loadHistory(symbol) {
  const generation = state.generation;
  const params = new URLSearchParams({ limit: String(HISTORY_LIMIT) });
  if (symbol) params.set("symbol", symbol);
  state.loading++;
  el.rows.setAttribute("aria-busy", "true"); // no screen-reader announcement for each history row
  try {
    const response = await fetch(`/api/signals?${params}`, { headers: authHeaders(), cache: "no-store" });
    if (generation !== state.generation) return;
    if (response.status === 401) { unauthorized("GET /api/signals answered 401"); return; }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { showAlert(`Could not load signal history: ${body.error || response.status}`); return; }
    (body.signals || []).forEach((sig) => accept(sig, false));
    flush();
  } catch (exc) {
    if (generation === state.generation) showAlert(`Could not load signal history: ${exc.message}`);
  } finally {
    if (--state.loading === 0) el.rows.setAttribute("aria-busy", "false");
  }
}

function authPayload() {
  const auth = {};
  if (state.token) auth.token = state.token;
  if (state.cursor.epoch) {
    auth.since = state.cursor.seq;
    auth.epoch = state.cursor.epoch;
  }
  if (state.selected.size) auth.symbols = [...state.selected];
  state.sentSince = "since" in auth;
  return auth;
}

function connect() {
  if (typeof window.io !== "function") {
    setStatus("offline", "Socket.IO client not loaded");
    return;
  }
  setStatus("connecting");
  const socket = window.io({
    auth: (cb) => cb(authPayload()), // called on every (re)connect: carries the latest cursor
    forceNew: true,
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 3000,
  });
  state.socket = socket;
  socket.on("connect", () => {
    clearAlert();
    el.status.title = "";
    setStatus("connecting", "waiting for the server"); // live once it welcomes us
  });
  socket.on("disconnect", (reason) => {
    if (socket !== state.socket) return;
    if (reason === "io server disconnect") socket.connect(); // the server dropped us: come back
    el.status.title = reason;
    setStatus(navigator.onLine === false ? "offline" : "reconnecting");
  });
  socket.on("connect_error", (err) => {
    if (socket !== state.socket) return;
    const message = (err && err.message) || "connection failed";
    if (socket.active) {
      el.status.title = message; // transport details for the curious, not for the badge
    } else if (message.startsWith("unauthorized")) {
      unauthorized(message);
    } else {
      setStatus("offline", "refused");
      showAlert("The server refused the connection.", message);
    }
  });
  socket.io.on("reconnect_attempt", (attempt) => {
    if (socket === state.socket) setStatus(navigator.onLine === false ? "offline" : "reconnecting", `attempt ${attempt}`);
  });
  socket.on("welcome", (w) => {
    if (!w || typeof w.epoch !== "string") return;
    setStatus("live");
    if (!state.sentSince) {
      // First connect: the live stream starts after w.seq; what came before comes from history.
      state.cursor = { epoch: w.epoch, seq: Number.isInteger(w.seq) ? w.seq : 0 };
      loadHistory(null);
      state.selected.forEach((s) => loadHistory(s));
    }
    // A reconnect with an old epoch is answered by `resync` next. Outcomes scored while away: fetch them again.
    loadOutcomes();
    loadStats();
  });
  socket.on("resync", (r) => {
    if (r && typeof r.epoch === "string") state.cursor = { epoch: r.epoch, seq: 0 };
    scheduleStats();
  });
  socket.on("new_signal", (sig) => accept(sig, true));
  socket.on("signal_outcome", (o) => {
    applyOutcome(o);
    scheduleStats();
  });
}

/** Forget everything and start over (a new token, for instance). */
function restart() {
  state.generation++;
  if (state.socket) {
    const old = state.socket;
    state.socket = null;
    old.off(); // its late events must not touch the new session
    old.disconnect();
  }
  clearTimeout(state.flushTimer);
  Object.assign(state, {
    entries: [], seen: new Set(), pending: [], flushTimer: null, known: new Set(),
    cursor: { epoch: null, seq: 0 }, sentSince: false,
    byKey: new Map(), outcomes: new Map(), selectedKey: null,
  });
  clearAlert();
  el.details.hidden = true;
  renderTable();
  updateCounts();
  renderSymbolList();
  drawMarkers();
  scheduleCandles(0);
  connect();
}

// ---------- wiring ----------
el.token.value = state.token;
el.tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = el.token.value.trim();
  write(STORE.token, state.token);
  restart();
});

el.symbolList.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement)) return;
  const next = new Set(state.selected);
  if (box.checked) next.add(box.value); else next.delete(box.value);
  setSelection(next);
});
el.symbolForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const symbol = el.symbolInput.value.trim().toUpperCase();
  if (!SYMBOL_RE.test(symbol)) {
    showAlert("A symbol is 1-32 letters, digits and / : . _ - starting with a letter or digit, such as BTCUSDT or BTC/USD.");
    return;
  }
  el.symbolInput.value = "";
  setSelection(new Set([...state.selected, symbol]));
});
el.symbolAll.addEventListener("click", () => setSelection(new Set()));

el.notify.checked = read(STORE.notify, "0") === "1" && "Notification" in window && Notification.permission === "granted";
el.notify.addEventListener("change", async () => {
  if (el.notify.checked) {
    if (!("Notification" in window)) {
      showAlert("This browser does not support notifications.");
      el.notify.checked = false;
    } else if ((await Notification.requestPermission()) !== "granted") {
      showAlert("Notifications are blocked for this site in the browser settings.");
      el.notify.checked = false;
    }
  }
  write(STORE.notify, el.notify.checked ? "1" : "0");
});
el.sound.checked = read(STORE.sound, "0") === "1";
el.sound.addEventListener("change", () => {
  write(STORE.sound, el.sound.checked ? "1" : "0");
  if (el.sound.checked) audioContext(); // created during the click, so the browser lets it play
});
// Browsers keep audio suspended until the user interacts with the page.
document.addEventListener("pointerdown", () => { if (el.sound.checked) audioContext(); }, { once: true });

window.addEventListener("offline", () => setStatus("offline", "no network"));
window.addEventListener("online", () => {
  if (state.socket && !state.socket.connected) setStatus("reconnecting");
});

el.rows.addEventListener("click", (event) => {
  const tr = event.target.closest("tr");
  const entry = tr && state.byKey.get(tr.dataset.key);
  if (entry) select(entry, true);
});
el.rows.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.target instanceof HTMLTableRowElement)) return;
  const entry = state.byKey.get(event.target.dataset.key);
  if (entry) select(entry, true);
});

el.picker.addEventListener("focus", openPicker);
el.picker.addEventListener("input", openPicker);
el.picker.addEventListener("keydown", (event) => {
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    moveHighlight(event.key === "ArrowDown" ? 1 : -1);
  } else if (event.key === "Escape") {
    choose(null);
  } else if (event.key === "Enter") {
    event.preventDefault();
    const option = el.pickerOptions.querySelector(".active") || el.pickerOptions.querySelector('[role="option"]');
    choose(option ? option.dataset.symbol : null);
  }
});
el.picker.addEventListener("blur", () => choose(null));
// mousedown, not click: cancelling it keeps the focus in the input, so its blur does not close the list first.
el.pickerOptions.addEventListener("mousedown", (event) => {
  const option = event.target.closest('[role="option"]');
  if (!option) return;
  event.preventDefault();
  choose(option.dataset.symbol);
});
el.timeframe.addEventListener("change", () => showChart(state.view.symbol, el.timeframe.value));
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.view.symbol) scheduleCandles(0);
});

// Read-only views of what the chart draws, for tests and the curious: nothing here changes the page.
window.qsChart = Object.freeze({
  get symbol() { return state.view.symbol; },
  get timeframe() { return state.view.timeframe; },
  snapshot: () => (state.chart ? state.chart.snapshot() : { mode: null, candles: [], markers: [], lines: [], panes: 0 }),
  xOf: (time) => (state.chart ? state.chart.xOf(time) : null),
});

const saved = readJSON(STORE.chart, {});
setHorizons(DEFAULT_HORIZONS);
renderSymbolList();
updateCounts();
renderTimeframes();
if (typeof saved.symbol === "string" && SYMBOL_RE.test(saved.symbol)) {
  state.chartSymbols.add(saved.symbol);
  showChart(saved.symbol, saved.timeframe);
} else if (scan.symbols.length) {
  showChart(scan.symbols[0]);
}
connect();
