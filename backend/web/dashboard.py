"""The live dashboard at /: a page that connects to Socket.IO, charts the scan's candles and lists the signals;
its files under /static (the vendored libraries come from `make install`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from backend import asyncapi
from backend.contract import SYMBOL_PATTERN, TIMEFRAME_PATTERN
from backend.signal_schema import SYMBOL_RE
from backend.web.errors import JsonErrorRoute
from backend.web.rate_limits import limit_address
from backend.web.state import WebState, get_state

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(tags=["dashboard"], route_class=JsonErrorRoute, dependencies=[Depends(limit_address)])


class RevalidatedStaticFiles(StaticFiles):
    """Static files a browser revalidates before each use (ETag / Last-Modified answer 304 when unchanged).

    The file names carry no version, so a cached copy must never outlive a deploy.
    """

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        """Starlette's file answer, with Cache-Control: no-cache."""
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, state: WebState = Depends(get_state)) -> HTMLResponse:
    """The live dashboard, told which symbols and timeframes the scan covers (its chart picker lists them)."""
    settings = state.settings
    context = {
        "scan_symbols": " ".join(settings.symbols),
        "scan_timeframes": " ".join(settings.timeframe.split(",")),
        # The page's symbol and timeframe rules are the contract's, not a copy in app.js.
        "symbol_pattern": SYMBOL_PATTERN,
        "timeframe_pattern": TIMEFRAME_PATTERN,
        "symbol_input_pattern": symbol_input_pattern(),
    }
    return templates.TemplateResponse(request, "index.html", context)


def symbol_input_pattern() -> str:
    """The contract's symbol rule for the filter's <input pattern>: any case (upper-cased when added), and `/` and
    a literal `-` escaped, as browsers compile the attribute with the `v` flag."""
    body = SYMBOL_RE.pattern.replace("A-Z", "A-Za-z").replace("/", "\\/")
    return body.replace("_-]", "_\\-]")


@router.get("/api/asyncapi.json", include_in_schema=False)
def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the channels, Socket.IO events and webhooks (backend/asyncapi.py)."""
    return asyncapi.build()


def mount_static(app: FastAPI) -> None:
    """Serve backend/web/static at /static."""
    app.mount("/static", RevalidatedStaticFiles(directory=HERE / "static"), name="static")
