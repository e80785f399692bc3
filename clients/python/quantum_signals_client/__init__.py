"""Quantum Signals for bots: `for event in Client(url, cursor="bot.cursor"):` yields each signal once, in order."""

from quantum_signals_client.async_client import AsyncClient, Backoff, ClientError, ConnectionRefused
from quantum_signals_client.cursor_file import CursorFile, CursorFileError
from quantum_signals_client.events import Cursor, Event, Outcome, ProtocolError, Resync, Signal
from quantum_signals_client.sync_client import Client

__all__ = [
    "AsyncClient",
    "Backoff",
    "Client",
    "ClientError",
    "ConnectionRefused",
    "Cursor",
    "CursorFile",
    "CursorFileError",
    "Event",
    "Outcome",
    "ProtocolError",
    "Resync",
    "Signal",
]
