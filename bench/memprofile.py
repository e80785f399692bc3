"""Where the web process's memory per connected client goes: `python -m bench.memprofile [--clients 2000]`.

The web app (create_app, served by uvicorn as backend/web/server.py configures it) runs in this process with
tracemalloc on, on a private redis-server; the Node load generator connects CLIENTS websocket clients. Prints
the bytes per client allocated between "started" and "every client welcomed", by library file and by line.
"""

from __future__ import annotations

import argparse
import linecache
import threading
import time
import tracemalloc

from bench.fanout import LoadGen, private_redis
from harness.polling import wait_until
from harness.ports import free_port


def _short(filename: str) -> str:
    """FILENAME from its package on (site-packages/…, backend/…, asyncio/…)."""
    for marker in ("site-packages/", "/lib/python3", "/work/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
    return filename


def main(argv: list[str] | None = None) -> int:
    """Connect the clients under tracemalloc and print where their memory went."""
    parser = argparse.ArgumentParser(prog="python -m bench.memprofile", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    import uvicorn

    from backend.settings import Settings
    from backend.web import create_app
    from backend.web.server import uvicorn_config

    with private_redis() as redis_server:
        settings = Settings.from_env({"REDIS_URL": redis_server.url, "MAX_CONNECTIONS_PER_IP": "0"})
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(uvicorn_config(app, settings, host="127.0.0.1", port=port))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started and app.state.relay.ready(), 30, message="the web app ready")
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        loadgen = LoadGen([f"http://127.0.0.1:{port}"], args.clients, max(1, args.clients // 2500), "welcome")
        try:
            ready = loadgen.connect()
            time.sleep(1.0)
            after = tracemalloc.take_snapshot()
        finally:
            loadgen.close()
            server.should_exit = True
            thread.join(15)
    clients = ready["ready"] or 1
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    print(f"{ready['ready']} clients welcomed in {ready['seconds']:.1f} s; {total / clients:,.0f} B per client traced")
    print("\nby file (B per client):")
    for stat in after.compare_to(before, "filename")[: args.top]:
        print(f"{stat.size_diff / clients:10,.0f}  {_short(stat.traceback[0].filename)}")
    print("\nby line (B per client):")
    for stat in after.compare_to(before, "lineno")[: args.top]:
        frame = stat.traceback[0]
        code = linecache.getline(frame.filename, frame.lineno).strip()[:70]
        print(f"{stat.size_diff / clients:10,.0f}  {_short(frame.filename)}:{frame.lineno}  {code}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
