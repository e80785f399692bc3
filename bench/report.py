"""The results table (every figure with its ratio to the row's baseline), the targets, and the machine."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

BEGIN, END = "<!-- bench:results begin -->", "<!-- bench:results end -->"


@dataclass
class Row:
    """One line of the table: a scenario measured on one peer, compared with the row named BASELINE."""

    scenario: str
    peer: str
    values: dict = field(default_factory=dict)
    baseline: str | None = None  # "scenario/peer" of the row to divide by
    note: str = ""

    @property
    def key(self) -> str:
        """scenario/peer."""
        return f"{self.scenario}/{self.peer}"


# (value key, header, decimals, show a ratio)
COLUMNS = [
    ("p50_ms", "p50 ms", 2, True),
    ("p99_ms", "p99 ms", 1, True),
    ("p50_over_floor_ms", "p50 − floor ms", 2, False),
    ("throughput", "throughput /s", 0, True),
    ("lost_dup", "lost / dup", None, False),
    ("cpu_pct", "CPU %", 1, True),
    ("cpu_s_per_1k", "CPU s / 1k deliv.", 4, True),
    ("rss_per_1k_mb", "RSS MB / 1k clients", 1, True),
    ("rss_mb", "RSS MB", 0, True),
    ("connect_s", "accept s", 1, True),
]


def _number(value: float, decimals: int) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value:.{decimals}f}"


def cell(value, base, decimals: int | None, ratio: bool) -> str:
    """VALUE, and its ratio to BASE when both are numbers."""
    if value is None:
        return "–"
    if decimals is None:
        return str(value)
    text = _number(value, decimals)
    if ratio and isinstance(base, (int, float)) and base:
        text += f" ({value / base:.2f}×)"
    return text


def table(rows: list[Row]) -> str:
    """The markdown table."""
    by_key = {row.key: row for row in rows}
    lines = [
        "| scenario | peer | " + " | ".join(h for _, h, _, _ in COLUMNS) + " | baseline | notes |",
        "|" + " --- |" * (len(COLUMNS) + 4),
    ]
    for row in rows:
        base = by_key.get(row.baseline) if row.baseline else None
        cells = [cell(row.values.get(k), base.values.get(k) if base else None, d, r) for k, _, d, r in COLUMNS]
        base_name = "itself" if row.baseline == row.key else (row.baseline or "–")
        lines.append(f"| {row.scenario} | {row.peer} | " + " | ".join(cells) + f" | {base_name} | {row.note} |")
    return "\n".join(lines)


def machine() -> dict:
    """What the figures were measured on."""
    model = "unknown"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = match.group(1).strip() if match else model
    except OSError:
        pass
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        node = "missing"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform.python_version(),
        "node": node,
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
    }


def write_docs(path: Path, body: str) -> None:
    """Put BODY between the result markers of PATH, keeping the hand-written text around them."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = (text.rstrip() + "\n\n" if text else "# Benchmarks\n\n") + block + "\n"
    path.write_text(text)
