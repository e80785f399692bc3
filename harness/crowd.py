"""Many publishers at once: PROCESSES child processes released together, each publishing PER_PROCESS signals
through one outside door (the console command, or POST /api/signals), answering what each publish returned."""

from __future__ import annotations

import json
import multiprocessing
import os
import queue as queue_module

import requests

# A child's queue entry: (exit status or HTTP status, the stored signal or None, the error text).
Outcome = tuple[int, dict | None, str]


def publish_by_cli(env: dict[str, str], index: int, count: int) -> list[Outcome]:
    """COUNT `quantum-signals signals publish` runs in this process (click's runner: the real command, no shell)."""
    from click.testing import CliRunner

    from backend.cli import main

    os.environ.update(env)
    runner = CliRunner()
    outcomes = []
    for n in range(count):
        price = f"{100 + index}.{n:03d}"
        result = runner.invoke(main, ["signals", "publish", "--type", "BUY", "--price", price, "--symbol", "ETHUSDT"])
        stored = json.loads(result.stdout) if result.stdout.strip() else None
        outcomes.append((result.exit_code, stored, result.stderr))
    return outcomes


def publish_by_http(url: str, token: str, index: int, count: int) -> list[Outcome]:
    """COUNT POSTs of a signal without an id to URL/api/signals."""
    outcomes = []
    with requests.Session() as session:
        for n in range(count):
            body = {"type": "BUY", "price": 100 + index + n / 1000, "symbol": "ETHUSDT"}
            answer = session.post(f"{url}/api/signals", json=body, headers={"Authorization": f"Bearer {token}"})
            outcomes.append((answer.status_code, answer.json() if answer.ok else None, answer.text[:300]))
    return outcomes


def _child(barrier, results, target, index: int, args: tuple) -> None:
    barrier.wait(60)  # all children publish at once
    try:
        results.put((index, target(*args[:-1], index, args[-1])))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it instead of waiting for a result forever
        results.put((index, [(-1, None, f"{type(exc).__name__}: {exc}")]))


def from_processes(target, processes: int, per_process: int, *args) -> list[Outcome]:
    """Run TARGET(*ARGS, index, PER_PROCESS) in PROCESSES spawned children released at once; all outcomes."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    children = [
        context.Process(target=_child, args=(barrier, results, target, index, (*args, per_process)))
        for index in range(processes)
    ]
    for child in children:
        child.start()
    outcomes: list[Outcome] = []
    try:
        for _ in children:
            outcomes.extend(results.get(timeout=120)[1])
    except queue_module.Empty:
        raise AssertionError(f"a publishing child gave no result within 120 s ({len(outcomes)} outcomes)") from None
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
    return outcomes
