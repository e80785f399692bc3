// The stats panel: how each strategy's signals fared, per horizon (GET /api/stats), drawn with DOM calls only.
import { cell, formatRate, formatReturn, plural, signClass } from "./format.js";

/** Fill CONTAINER with one table per entry of STATS (rows: HORIZONS); LIMITS ({max_entries, not_counted}, of
 * /api/stats) add a note when STATS_MAX_ENTRIES left signals uncounted. */
export function renderStats(container, stats, horizons, limits = {}) {
  const blocks = stats.filter((s) => s && typeof s.strategy === "string").map((s) => {
    const table = document.createElement("table");
    table.className = "stats-table";
    table.dataset.strategy = s.strategy;
    const caption = document.createElement("caption");
    const name = cell("span", s.strategy);
    name.className = "strategy";
    const count = cell("span", plural(Number.isInteger(s.signals) ? s.signals : 0, "signal"));
    count.className = "count";
    caption.append(name);
    if (typeof s.source === "string") { // an outside signals' entry, apart from the scan's own strategies
      table.dataset.source = s.source;
      const source = cell("span", `outside signals, source ${s.source || "none"} · `);
      source.className = "source";
      caption.append(source);
    }
    caption.append(count);
    const head = document.createElement("tr");
    for (const label of ["after", "scored", "hit rate", "mean return"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = label;
      head.append(th);
    }
    const thead = document.createElement("thead");
    thead.append(head);
    const tbody = document.createElement("tbody");
    for (const h of horizons) {
      const o = (s.outcomes && s.outcomes[h]) || {};
      const tr = document.createElement("tr");
      tr.dataset.h = String(h);
      const mean = document.createElement("td");
      mean.textContent = formatReturn(o.mean_return);
      if (typeof o.mean_return === "number") mean.classList.add(signClass(o.mean_return));
      tr.append(cell("th", `+${plural(h, "bar")}`), cell("td", String(o.n ?? 0)),
                cell("td", formatRate(o.hit_rate)), mean);
      tbody.append(tr);
    }
    table.append(caption, thead, tbody);
    return table;
  });
  if (Number.isInteger(limits.not_counted) && limits.not_counted > 0) {
    const full = document.createElement("p");
    full.className = "stats-full";
    full.textContent = `Stats are full (${limits.max_entries} entries, STATS_MAX_ENTRIES): `
      + `${plural(limits.not_counted, "signal")} of other strategies or sources scored but not counted.`;
    blocks.unshift(full);
  }
  if (!blocks.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = "No scored signals yet: a signal is scored as the bars after it close.";
    blocks.push(empty);
  }
  container.replaceChildren(...blocks);
}
