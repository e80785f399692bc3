"""What the tests and the benchmarks share: ports, child processes, a test Redis, the exchange, clients, polling.

Modules by concern: `ports` (free_port), `polling` (wait_until), `processes` (ServerProcess, WebServer,
CeleryProcess, the Procfile's command lines), `redis` (TLS Redis, redis-cli, the project's publisher),
`exchange` (the loopback Binance-compatible server, in-process or as a process), `clients` (RecordingClient,
NodeClient), `receiver` (a recording HTTP receiver of notifications).
"""
