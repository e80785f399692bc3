// The live dashboard: history from /api/signals, live signals over Socket.IO, gap-free recovery.
(() => {
  "use strict";

  const STORE = { token: "qs.token", symbols: "qs.symbols", notify: "qs.notify", sound: "qs.sound" };
  const MAX_SIGNALS = 1000; // kept in memory and listed; older ones drop off the bottom
  const HISTORY_LIMIT = 500;
  const MAX_CHARTS_ALL = 6; // charts shown when no symbol is ticked
  const BULK_RENDER = 40; // more new rows than this in one batch: rebuild the table
  const SYMBOL_RE = /^[A-Za-z0-9]{1,32}$/;

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"), statusText: $("status-text"), alert: $("alert"),
    tokenForm: $("token-form"), token: $("token"),
    symbolList: $("symbol-list"), symbolForm: $("symbol-form"), symbolInput: $("symbol-input"),
    symbolAll: $("symbol-all"), notify: $("notify-toggle"), sound: $("sound-toggle"),
    charts: $("charts"), chartsEmpty: $("charts-empty"),
    rows: $("signal-rows"), count: $("signal-count"), signalsEmpty: $("signals-empty"),
  };

  const state = {
    token: read(STORE.token, ""),
    selected: new Set(readJSON(STORE.symbols, []).filter((s) => SYMBOL_RE.test(s))), // empty: all
    known: new Set(),
    entries: [], // newest first
    seen: new Set(), // "s:<epoch>:<seq>" and "i:<id>"
    cursor: { epoch: null, seq: 0 }, // the Socket.IO replay cursor
    sentSince: false,
    arrivals: 0,
    socket: null,
    pending: [],
    flushTimer: null,
    charts: new Map(), // symbol -> {card, chart, series, markers, last}
    dirtySymbols: new Set(),
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

  // ---------- formatting ----------
  const priceFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 8 });
  const formatPrice = (p) => (typeof p === "number" && Number.isFinite(p) ? priceFormat.format(p) : text(p));
  // Chart axis labels: digits by magnitude, so the price scale stays narrow.
  const axisFormats = [2, 4, 8].map((d) => new Intl.NumberFormat(undefined, { maximumFractionDigits: d }));
  const formatAxisPrice = (p) => axisFormats[Math.abs(p) >= 100 ? 0 : Math.abs(p) >= 1 ? 1 : 2].format(p);
  const text = (v) => (v == null ? "" : typeof v === "string" ? v : JSON.stringify(v));

  function parseTime(value) {
    if (typeof value !== "string") return NaN;
    return Date.parse(value);
  }

  function formatTime(ms) {
    const iso = new Date(ms).toISOString(); // 2026-11-25T22:51:03.123Z
    const today = new Date().toISOString().slice(0, 10);
    return iso.slice(0, 10) === today ? iso.slice(11, 19) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
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
    const keys = [];
    if (hasSeq) keys.push(`s:${sig.epoch}:${sig.seq}`);
    if (typeof sig.id === "string" && sig.id) keys.push(`i:${sig.id}`);
    if (keys.some((k) => state.seen.has(k))) return false;
    keys.forEach((k) => state.seen.add(k));

    const received = Date.now();
    const barMs = parseTime(sig.bar_time);
    const emittedMs = parseTime(sig.emitted_at);
    const t = Number.isFinite(emittedMs) ? emittedMs : Number.isFinite(barMs) ? barMs : received;
    const symbol = typeof sig.symbol === "string" ? sig.symbol : null;
    const entry = {
      sig, symbol, t, live,
      order: ++state.arrivals,
      key: keys[0] || `r:${state.arrivals}`,
      chartTime: Math.floor((Number.isFinite(barMs) ? barMs : t) / 1000),
      row: null,
    };
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
        state.dirtySymbols.add(entry.symbol);
        if (SYMBOL_RE.test(entry.symbol) && !state.known.has(entry.symbol)) {
          state.known.add(entry.symbol);
          symbolsChanged = true;
        }
      }
    }
    for (const dropped of state.entries.splice(MAX_SIGNALS)) {
      if (dropped.row) dropped.row.remove();
      dropped.row = undefined; // marks it dropped
      if (dropped.symbol) state.dirtySymbols.add(dropped.symbol);
    }
    const kept = batch.filter((e) => e.row === null && visible(e));
    if (kept.length > BULK_RENDER) renderTable();
    else kept.forEach(insertRow);
    updateCounts();
    if (symbolsChanged) renderSymbolList();
    updateCharts(symbolsChanged);
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
    if (entry.live && !entry.flashed) tr.classList.add("fresh"); // once, not on every rebuild
    entry.flashed = true;
    entry.row = tr;
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

  // ---------- charts ----------
  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function chartSymbols() {
    if (state.selected.size) return [...state.selected].sort();
    return [...state.known].sort().slice(0, MAX_CHARTS_ALL);
  }

  function createChartCard(symbol) {
    const card = document.createElement("figure");
    card.className = "chart-card";
    card.dataset.symbol = symbol;
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "chart-symbol";
    name.textContent = symbol;
    const last = document.createElement("span");
    last.className = "chart-last";
    caption.append(name, last);
    const box = document.createElement("div");
    box.className = "chart";
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", `Signal prices of ${symbol}`);
    card.append(caption, box);
    return { card, last, box, chart: null, series: null, markers: null };
  }

  /** Create the chart inside an attached card (it measures its container). */
  function mountChart(view) {
    const LWC = window.LightweightCharts;
    if (!LWC) {
      view.box.textContent = "Chart library not loaded.";
      return;
    }
    const grid = css("--grid");
    const chart = LWC.createChart(view.box, {
      autoSize: true,
      layout: { background: { type: LWC.ColorType.Solid, color: css("--panel") }, textColor: css("--muted"),
                fontFamily: getComputedStyle(document.body).fontFamily },
      grid: { vertLines: { color: grid }, horzLines: { color: grid } },
      rightPriceScale: { borderColor: css("--border") },
      timeScale: { borderColor: css("--border"), timeVisible: true, secondsVisible: false },
      localization: { priceFormatter: formatAxisPrice },
    });
    const series = chart.addSeries(LWC.LineSeries, {
      color: css("--line"), lineWidth: 2, pointMarkersVisible: true, priceLineVisible: false,
    });
    const markers = LWC.createSeriesMarkers(series, []);
    // A signal line is short: show all of it whenever the layout resizes the chart.
    chart.timeScale().subscribeSizeChange(() => chart.timeScale().fitContent());
    Object.assign(view, { chart, series, markers, colors: { buy: css("--buy"), sell: css("--sell") } });
  }

  function fillChart(symbol, view) {
    const latest = state.entries.find((e) => e.symbol === symbol);
    view.last.textContent = latest ? `${text(latest.sig.type)} @ ${formatPrice(latest.sig.price)}` : "no signals yet";
    if (!view.series) return;
    const points = new Map();
    const marks = [];
    // entries are newest first; walk oldest first so the latest price of a bar wins
    for (let i = state.entries.length - 1; i >= 0; i--) {
      const e = state.entries[i];
      if (e.symbol !== symbol || typeof e.sig.price !== "number") continue;
      points.set(e.chartTime, e.sig.price);
      const buy = e.sig.type === "BUY";
      marks.push({
        time: e.chartTime, position: buy ? "belowBar" : "aboveBar", shape: buy ? "arrowUp" : "arrowDown",
        color: buy ? view.colors.buy : view.colors.sell, text: text(e.sig.type),
      });
    }
    const data = [...points].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
    marks.sort((a, b) => a.time - b.time);
    view.series.applyOptions({ lineVisible: data.length > 1 }); // one price is a point, not a level
    view.series.setData(data);
    view.markers.setMarkers(marks);
    view.chart.timeScale().fitContent();
  }

  function updateCharts(layoutChanged) {
    if (layoutChanged) {
      const wanted = chartSymbols();
      for (const [symbol, view] of state.charts) {
        if (!wanted.includes(symbol)) {
          if (view.chart) view.chart.remove();
          view.card.remove();
          state.charts.delete(symbol);
        }
      }
      const added = [];
      for (const symbol of wanted) {
        if (!state.charts.has(symbol)) {
          state.charts.set(symbol, createChartCard(symbol));
          state.dirtySymbols.add(symbol);
          added.push(state.charts.get(symbol));
        }
        el.charts.append(state.charts.get(symbol).card); // keeps the sorted order
      }
      added.forEach(mountChart); // after all cards are in the grid, so each gets its final width
      el.chartsEmpty.hidden = wanted.length > 0;
    }
    for (const symbol of state.dirtySymbols) {
      const view = state.charts.get(symbol);
      if (view) fillChart(symbol, view);
    }
    state.dirtySymbols.clear();
  }

  // ---------- symbol picker ----------
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
    updateCharts(true);
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
      // A reconnect with an old epoch is answered by `resync` next.
    });
    socket.on("resync", (r) => {
      if (r && typeof r.epoch === "string") state.cursor = { epoch: r.epoch, seq: 0 };
    });
    socket.on("new_signal", (sig) => accept(sig, true));
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
    });
    clearAlert();
    renderTable();
    updateCounts();
    renderSymbolList();
    updateCharts(true);
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
      showAlert("A symbol is letters and digits only, such as BTCUSDT.");
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

  renderSymbolList();
  updateCounts();
  updateCharts(true);
  connect();
})();
