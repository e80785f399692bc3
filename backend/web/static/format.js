// How the dashboard writes numbers, times and returns, and its one way to make an element with text (never HTML).

const priceFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 8 });
export const formatPrice = (p) => (typeof p === "number" && Number.isFinite(p) ? priceFormat.format(p) : text(p));
// Chart axis labels: digits by magnitude, so the price scale stays narrow.
const axisFormats = [2, 4, 8].map((d) => new Intl.NumberFormat(undefined, { maximumFractionDigits: d }));
export const formatAxisPrice = (p) => axisFormats[Math.abs(p) >= 100 ? 0 : Math.abs(p) >= 1 ? 1 : 2].format(p);
export const text = (v) => (v == null ? "" : typeof v === "string" ? v : JSON.stringify(v));
// Returns of short bars are small: three decimals of a percent below 1 %.
const percentFormats = [2, 3].map((digits) => new Intl.NumberFormat(undefined, {
  style: "percent", minimumFractionDigits: 2, maximumFractionDigits: digits, signDisplay: "exceptZero",
}));
export const formatReturn = (r) => (typeof r === "number" && Number.isFinite(r)
  ? percentFormats[Math.abs(r) < 0.01 ? 1 : 0].format(r) : "—");
export const signClass = (r) => (r > 0 ? "up" : r < 0 ? "down" : "flat");
export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
export const formatRate = (h) => (typeof h === "number" && Number.isFinite(h) ? `${(h * 100).toFixed(0)} %` : "—");

export function parseTime(value) {
  if (typeof value !== "string") return NaN;
  return Date.parse(value);
}

export function formatTime(ms) {
  const iso = new Date(ms).toISOString(); // 2026-11-25T22:51:03.123Z
  const today = new Date().toISOString().slice(0, 10);
  return iso.slice(0, 10) === today ? iso.slice(11, 19) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/** A TAG element holding CONTENT as text. */
export function cell(tag, content) {
  const node = document.createElement(tag);
  node.textContent = content;
  return node;
}
