// The candle chart: the bars of GET /api/candles, the strategies' indicator lines (on the price pane or in panes
// below, as the API's `panes` says) and BUY/SELL markers at the signals' bar times. No Socket.IO, no table here.

const MAX_PANES = 4; // the price pane and three below; the CSS sizes the box for each count (data-panes)
const PRICE_PANE = "price";

const seconds = (ms) => Math.floor(ms / 1000);

/** The panes a body asks for: "price" first, then each other label in the order it first appears. */
function paneLabels(body) {
  const labels = [PRICE_PANE];
  for (const [spec, series] of Object.entries(body.indicators || {})) {
    for (const name of Object.keys(series || {})) {
      const label = paneOf(body, spec, name);
      if (!labels.includes(label) && labels.length < MAX_PANES) labels.push(label);
    }
  }
  return labels;
}

function paneOf(body, spec, name) {
  const label = body.panes && body.panes[spec] && body.panes[spec][name];
  return typeof label === "string" && label ? label : PRICE_PANE;
}

/** One string naming every series and its pane: a change means the chart is rebuilt. */
function layoutOf(body) {
  const parts = [];
  for (const [spec, series] of Object.entries(body.indicators || {})) {
    for (const name of Object.keys(series || {})) parts.push(`${spec}\u0000${name}\u0000${paneOf(body, spec, name)}`);
  }
  return parts.join("\u0001");
}

export class CandleChart {
  /** A chart in BOX; THEME holds CSS colours (lines: one per swatch); ON_PICK(id or null, time in s) runs when the user clicks it. */
  constructor(box, theme, formatPrice, onPick) {
    Object.assign(this, { box, theme, formatPrice, onPick });
    this.chart = null;
    this.layout = null;
    this.mode = null; // "candles" or "signals" (no candles for this pair: the signals' prices as a line)
    this.lines = []; // {spec, name, label, pane, swatch, histogram, series}
    this.times = new Set(); // bar times (s) of the candles shown, where markers may sit
  }

  /** Show the candles and indicator series of an /api/candles BODY. */
  showCandles(body) {
    const candles = Array.isArray(body.candles) ? body.candles : [];
    const layout = `candles\u0002${layoutOf(body)}`;
    if (layout !== this.layout) this.build(body, layout);
    const times = candles.map((c) => seconds(c.time));
    this.times = new Set(times);
    this.main.setData(candles.map((c, i) => ({ time: times[i], open: c.open, high: c.high, low: c.low, close: c.close })));
    for (const line of this.lines) {
      const values = (body.indicators[line.spec] || {})[line.name] || [];
      line.series.setData(times.map((time, i) => {
        const value = values[i];
        if (typeof value !== "number" || !Number.isFinite(value)) return { time }; // whitespace: no point
        return line.histogram ? { time, value, color: value >= 0 ? this.theme.buy : this.theme.sell } : { time, value };
      }));
    }
  }

  /** No candles for this pair: draw the signals' prices (POINTS: [{time s, value}]) so markers still show. */
  showSignalPrices(points) {
    if (this.layout !== "signals") this.build(null, "signals");
    this.times = new Set(points.map((p) => p.time));
    this.main.applyOptions({ lineVisible: points.length > 1 });
    this.main.setData(points);
  }

  /** MARKERS: [{id, time s, type}]; those off the bars shown are left out. */
  setMarkers(markers) {
    if (!this.markers) return;
    const { buy, sell } = this.theme;
    this.markers.setMarkers(markers
      .filter((m) => this.times.has(m.time))
      .sort((a, b) => a.time - b.time)
      .map((m) => {
        const isBuy = m.type === "BUY";
        return {
          id: m.id, time: m.time, position: isBuy ? "belowBar" : "aboveBar",
          shape: isBuy ? "arrowUp" : "arrowDown", color: isBuy ? buy : sell, text: isBuy ? "B" : "S",
        };
      }));
  }

  /** Forget the chart (a new symbol or timeframe): the next show* builds it again. */
  clear() {
    if (this.chart) this.chart.remove();
    Object.assign(this, { chart: null, layout: null, main: null, markers: null, lines: [], times: new Set() });
    this.box.dataset.panes = "1";
  }

  build(body, layout) {
    this.clear();
    const LWC = window.LightweightCharts;
    const t = this.theme;
    const chart = LWC.createChart(this.box, {
      autoSize: true,
      layout: { background: { type: LWC.ColorType.Solid, color: t.panel }, textColor: t.muted, fontFamily: t.font,
                panes: { separatorColor: t.border } },
      grid: { vertLines: { color: t.grid }, horzLines: { color: t.grid } },
      rightPriceScale: { borderColor: t.border },
      timeScale: { borderColor: t.border, timeVisible: true, secondsVisible: false },
      localization: { priceFormatter: this.formatPrice },
    });
    if (body) {
      this.main = chart.addSeries(LWC.CandlestickSeries, {
        upColor: t.buy, downColor: t.sell, borderVisible: false, wickUpColor: t.buy, wickDownColor: t.sell,
      });
      const labels = paneLabels(body);
      let n = 0;
      for (const [spec, series] of Object.entries(body.indicators || {})) {
        for (const name of Object.keys(series || {})) {
          const label = paneOf(body, spec, name);
          const pane = labels.indexOf(label);
          if (pane < 0) continue; // more panes than the page has room for
          const swatch = n++ % t.lines.length; // app.css: --line-N and .swatch-N
          const histogram = /hist$/i.test(name);
          const options = { priceLineVisible: false, lastValueVisible: false, title: name };
          const api = histogram
            ? chart.addSeries(LWC.HistogramSeries, options, pane)
            : chart.addSeries(LWC.LineSeries, { ...options, color: t.lines[swatch], lineWidth: 1.5,
                                                crosshairMarkerVisible: false }, pane);
          this.lines.push({ spec, name, label, pane, swatch: histogram ? "hist" : swatch, histogram, series: api });
        }
      }
      this.box.dataset.panes = String(labels.length);
      chart.panes().forEach((pane, i) => pane.setStretchFactor(i === 0 ? 3 : 1));
    } else {
      this.main = chart.addSeries(LWC.LineSeries, {
        color: t.line, lineWidth: 2, pointMarkersVisible: true, priceLineVisible: false,
      });
    }
    this.markers = LWC.createSeriesMarkers(this.main, []);
    chart.subscribeClick((param) => {
      const info = param.hoveredInfo;
      const id = info && info.objectKind === "series-marker" ? info.objectId : param.hoveredObjectId;
      this.onPick(typeof id === "string" ? id : null, typeof param.time === "number" ? param.time : null);
    });
    Object.assign(this, { chart, layout, mode: body ? "candles" : "signals" });
  }

  /** Read-only views of what is drawn, for tests and the curious (window.qsChart). */
  snapshot() {
    if (!this.chart) return { mode: null, candles: [], markers: [], lines: [], panes: 0 };
    return {
      mode: this.mode,
      candles: this.main.data().map((d) => ({ ...d })),
      markers: this.markers.markers().map((m) => ({ id: m.id, time: m.time, text: m.text })),
      lines: this.lines.map((l) => ({
        spec: l.spec, name: l.name, pane: l.pane, label: l.label, points: l.series.data().filter((d) => "value" in d).length,
      })),
      panes: this.chart.panes().length,
    };
  }

  /** The x of bar TIME (s) in the chart box, in CSS pixels (null when off screen): where a click picks that bar. */
  xOf(time) {
    return this.chart ? this.chart.timeScale().timeToCoordinate(time) : null;
  }

  /** The lines drawn, for the legend: [{spec, name, label, swatch}]. */
  legend() {
    return this.lines.map(({ spec, name, label, swatch }) => ({ spec, name, label, swatch }));
  }
}
