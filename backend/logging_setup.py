"""Logging for the entry points: one short line per event, bounded when strangers send junk.

Anyone may publish on the channel and anyone may open a Socket.IO connection, so what they send must
not be able to flood the log: lines are cut to MAX_LINE characters, the tracebacks python-engineio and
python-socketio attach to packets they reject become one line, and each kind of line is rate-limited.
"""

from __future__ import annotations

import logging
import re
import threading
import time

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_LINE = 300
# Loggers that report what clients send; their tracebacks describe bad input, not bugs of ours.
PEER_LOGGERS = ("engineio", "socketio")
BURST = 5  # lines of one kind logged at once …
REFILL_S = 10.0  # … then one more per REFILL_S seconds, with a count of those suppressed meanwhile
# Publish tokens travel in ?token= (TradingView cannot set headers): no line shows one, whoever logs a URL.
TOKEN_RE = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)


# Loggers whose warnings a stranger can cause (a bad request line, a junk frame): rate-limited like peers'.
STRANGER_LOGGERS = (*PEER_LOGGERS, "uvicorn")


def _is_peer(name: str) -> bool:
    return name.split(".", 1)[0] in PEER_LOGGERS


def _stranger_made(name: str) -> bool:
    return name.split(".", 1)[0] in STRANGER_LOGGERS


class BoundedLogFilter(logging.Filter):
    """Cuts long lines, hides tokens, folds peer tracebacks into one line, rate-limits each kind of warning."""

    def __init__(self, burst: int = BURST, refill_s: float = REFILL_S):
        """BURST lines of one kind at once, then one per REFILL_S seconds."""
        super().__init__()
        self.burst, self.refill_s = burst, refill_s
        self._buckets: dict[tuple[str, str], list[float]] = {}  # kind -> [tokens, last refill, suppressed]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Shape RECORD in place; False drops it."""
        if record.levelno >= logging.WARNING and (
            _stranger_made(record.name) or getattr(record, "rate_limited", False)
        ):
            suppressed = self._take(record)
            if suppressed is None:
                return False
            if suppressed:
                record.msg, record.args = f"{record.getMessage()} ({suppressed} similar lines suppressed)", None
        if record.exc_info and _is_peer(record.name):
            exc = record.exc_info[1]
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {exc}", None
            record.exc_info, record.exc_text = None, None
        message = record.getMessage()
        redacted = TOKEN_RE.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args, message = redacted, None, redacted
        if len(message) > MAX_LINE:
            record.msg, record.args = f"{message[:MAX_LINE]}… ({len(message)} chars)", None
        return True

    def _take(self, record: logging.LogRecord) -> int | None:
        """None when this kind is over its budget; else how many of its lines were suppressed before."""
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            tokens, last, suppressed = self._buckets.get(key, (float(self.burst), now, 0))
            tokens = min(float(self.burst), tokens + (now - last) / self.refill_s)
            if tokens < 1:
                self._buckets[key] = [tokens, now, suppressed + 1]
                return None
            if len(self._buckets) > 1000:  # kinds are code sites, but keep the table bounded anyway
                self._buckets.clear()
            self._buckets[key] = [tokens - 1, now, 0]
            return int(suppressed)  # kept as a float in the bucket list; counted in whole lines


# uvicorn logs every connection and websocket handshake at INFO on "uvicorn.error": a line per stranger.
QUIET_LOGGERS = ("uvicorn.error",)


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr in one format, every line (the servers' and libraries' too) through BoundedLogFilter."""
    logging.basicConfig(level=level, format=FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    guard = BoundedLogFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, BoundedLogFilter) for f in handler.filters):
            handler.addFilter(guard)


def peer_logger(name: str) -> logging.Logger:
    """The logger handed to python-engineio/socketio: warnings and up, through the root's handlers only.

    Given a Logger object they add no handler of their own (a bare True/False makes them add one,
    and every line was printed twice).
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    return logger
