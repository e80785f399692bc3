"""Entry point of the web process: `python wsgi.py` serves Flask-SocketIO on eventlet at $PORT."""

import os
import warnings

if not os.environ.get("FLASK_RUN_FROM_CLI"):  # `flask signals …` needs no green threads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # eventlet warns on every import
        import eventlet
    # First, before anything imports redis or requests: patching later breaks ssl.
    eventlet.monkey_patch()

from backend.logging_setup import configure_logging
from backend.settings import ConfigError
from backend.web import create_app

configure_logging()
try:
    app = create_app()
except ConfigError as exc:  # a clear line naming the variable, not a traceback
    raise SystemExit(f"configuration error: {exc}") from None

if __name__ == "__main__":
    from backend.web.server import serve

    app.extensions["qs_relay"].start()
    app.extensions["qs_session_sweeper"].start()
    serve(app, app.config["SETTINGS"].port)
