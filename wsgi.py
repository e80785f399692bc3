"""Entry point of the web process: `python wsgi.py` serves Flask-SocketIO on eventlet at $PORT.

Any other server of `wsgi:app` (e.g. `gunicorn -k eventlet -w 1 wsgi:app`) gets the relay and the session
sweeper too: they start when this module is imported, except under the `flask` CLI.
"""

import os
import warnings

if not os.environ.get("FLASK_RUN_FROM_CLI"):  # `flask signals …` imports this module too: no green threads
    with warnings.catch_warnings():
        # Its notice is an EventletDeprecationWarning, a plain Warning: a DeprecationWarning filter misses it.
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
        import eventlet
    # First, before anything imports redis or requests: patching later breaks ssl.
    eventlet.monkey_patch()

from backend.logging_setup import configure_logging
from backend.settings import ConfigError
from backend.web import create_app, start_background_tasks

configure_logging()
try:
    app = create_app()
except ConfigError as exc:  # a clear line naming the variable, not a traceback
    raise SystemExit(f"configuration error: {exc}") from None

if not os.environ.get("FLASK_RUN_FROM_CLI"):  # nor a relay
    start_background_tasks(app)

if __name__ == "__main__":
    from backend.web.server import serve

    serve(app, app.config["SETTINGS"].port)
