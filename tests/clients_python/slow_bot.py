"""A bot that never finishes one signal (seq HANG_AT): a test SIGKILLs it there, between receiving and finishing.

Usage: python slow_bot.py URL CURSOR_FILE HANG_AT (0: finish every signal).
"""

import sys
import threading

from quantum_signals_client import Client, Signal


def main(url: str, cursor: str, hang_at: int) -> None:
    """Print `received SEQ` for each signal; stop working (forever) on HANG_AT."""
    for event in Client(url, cursor=cursor):
        if isinstance(event, Signal):
            print(f"received {event.seq}", flush=True)
            if event.seq == hang_at:
                threading.Event().wait()  # handling it, until killed


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
