"""Prometheus metrics of the web process, and the notification counts the workers keep in Redis."""

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from backend import destinations
from backend.signal_schema import NOTIFY_DEAD_KEY

SIGNALS_RELAYED = Counter("qs_signals_relayed_total", "Signals emitted to Socket.IO clients by this relay")
SIGNALS_REPLAYED = Counter("qs_signals_replayed_total", "Signals sent from history to recovering clients")
MALFORMED_DROPPED = Counter("qs_malformed_dropped_total", "Channel messages dropped as not a valid signal")
CLIENTS_CONNECTED = Gauge("qs_clients_connected", "Socket.IO clients connected to this process")
RELAY_SUBSCRIBED = Gauge("qs_relay_subscribed", "1 while the relay is subscribed and its loop beats")
RELAY_RESTARTS = Counter("qs_relay_restarts_total", "Times the relay loop failed unexpectedly and was restarted")
CLIENT_EVENTS_REFUSED = Counter("qs_client_events_refused_total", "Client events refused", ["reason"])
RELAY_RECONNECTS = Counter("qs_relay_reconnects_total", "Times the relay lost Redis and subscribed again")
RELAY_LAG = Histogram(
    "qs_relay_lag_seconds",
    "Delay from a signal's emitted_at to its relay by this process",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CONNECTIONS_REFUSED = Counter(
    "qs_connections_refused_total",
    "HTTP requests and websockets refused or cut at the transport level (per-IP cap, request body limits)",
    ["reason"],
)
IDLE_SESSIONS_CUT = Counter(
    "qs_idle_sessions_cut_total", "Engine.IO sessions closed for not connecting the / namespace in time"
)
BROADCAST_DELIVERIES = Counter(
    "qs_broadcast_deliveries_total",
    "Live deliveries by path: sent (written straight to the websocket by the fast path), dropped (ping timed "
    "out), else queued the normal way because of: gone, transport, queued, busy, blocked",
    ["path"],
)
PINGS_SENT = Counter(
    "qs_pings_sent_total",
    "Engine.IO PINGs sent by the ping wheel, by path: sent (written straight to an idle websocket), queue (through "
    "the client's Engine.IO queue), gone",
    ["path"],
)


class NotifyCollector:
    """Notification counts of every worker (qs:notify:stats) and the dead letters kept, read at each scrape."""

    def __init__(self, client: redis.Redis):
        """Read through CLIENT."""
        self.client = client

    def collect(self) -> Iterator[Metric]:
        """The families; nothing when Redis does not answer (the scrape still gets the process's own metrics)."""
        try:
            counts, dead = destinations.stats(self.client), self.client.xlen(NOTIFY_DEAD_KEY)
        except redis.RedisError:
            return
        deliveries = CounterMetricFamily(
            "qs_notify_deliveries",
            "Notification attempts by destination kind and result (sent, retried, dead; the label keeps its name), "
            "across all workers",
            labels=["kind", "outcome"],
        )
        for (kind, result), value in sorted(counts.items()):
            deliveries.add_metric([kind, result], value)
        yield deliveries
        yield GaugeMetricFamily(
            "qs_notify_dead_letters", "Dead-lettered notifications kept (listed by the CLI's `notify dead`)", dead
        )


def notify_metrics(client: redis.Redis) -> bytes:
    """Prometheus text of NotifyCollector: the workers count in Redis, since their own registries are not scraped."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NotifyCollector(client))
    return generate_latest(registry)
