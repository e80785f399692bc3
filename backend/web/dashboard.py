"""The live dashboard at /: a page that connects to Socket.IO, charts the scan's candles and lists the signals."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def dashboard():
    """The live dashboard, told which symbols and timeframes the scan covers (its chart picker lists them)."""
    settings = current_app.config["SETTINGS"]
    return render_template(
        "index.html", scan_symbols=" ".join(settings.symbols), scan_timeframes=" ".join(settings.timeframe.split(","))
    )
