"""The live dashboard at /: a page that connects to Socket.IO and draws the signals."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def dashboard():
    """The live dashboard."""
    return render_template("index.html")
