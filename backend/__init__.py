"""Quantum Signals: the shared core (settings, Redis, the signal contract, publishing, history)."""
