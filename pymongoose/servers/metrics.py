"""``--metrics URL``: the app servers' numbers, for Prometheus.

Each worker counts in a region of memory the supervisor shares with all of them
(an anonymous ``mmap`` made before the workers are forked), so that the endpoint,
served by the supervisor on its own address, reports every worker together, and
what a worker counted is kept (folded into a total) when it exits. A region is
given to one worker for its life: a reload's new workers and the old ones they
replace never write to the same one.

Exposed (Prometheus text format; through ``prometheus_client`` when it is
installed):

- ``pymongoose_requests_total``: HTTP responses completed;
- ``pymongoose_responses_total{status="2xx"}``: the same, by status class;
- ``pymongoose_requests_in_flight``: requests being handled now;
- ``pymongoose_request_duration_seconds``: a histogram, request to response end;
- ``pymongoose_connections``: connections open (sampled ten times a second);
- ``pymongoose_websocket_messages_total{direction="received"|"sent"}``;
- ``pymongoose_workers``: worker processes running.

>>> table = SharedCounters(2)
>>> index = table.take()
>>> region = table.region(index)
>>> region.request_done(200, 0.003); region.websocket(received=True); region.sample(3, 1)
>>> totals = table.totals()
>>> totals[REQUESTS], totals[STATUS + 1], totals[BUCKETS], totals[WS_RECEIVED], totals[IN_FLIGHT]
(1, 1, 1, 1, 1)
>>> table.give_back(index)  # its worker exits: counters kept, gauges gone
>>> totals = table.totals()
>>> totals[REQUESTS], totals[IN_FLIGHT], totals[CONNECTIONS]
(1, 0, 0)
"""

from __future__ import annotations

import mmap
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from ..errors import ListenError

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

# Each region: int64 slots, in this order.
REQUESTS, IN_FLIGHT, CONNECTIONS, WS_RECEIVED, WS_SENT, DURATION_US = range(6)
STATUS = 6  # 5 slots: 1xx to 5xx
BUCKET_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # prometheus_client's
BUCKETS = STATUS + 5  # one slot per bound (not cumulative), then +Inf
SLOTS = BUCKETS + len(BUCKET_BOUNDS) + 1
_SIZE = 8 * SLOTS
# Counters, as opposed to gauges: what a worker counted outlives it.
_KEPT = [REQUESTS, WS_RECEIVED, WS_SENT, DURATION_US, *range(STATUS, SLOTS)]


class Region:
    """One worker's counters (its threads update them under a lock)."""

    __slots__ = ("_view", "_lock")

    def __init__(self, view: memoryview) -> None:
        self._view = view  # of int64
        self._lock = threading.Lock()

    def request_done(self, status: int, seconds: float) -> None:
        view = self._view
        bucket = next((i for i, bound in enumerate(BUCKET_BOUNDS) if seconds <= bound), len(BUCKET_BOUNDS))
        with self._lock:
            view[REQUESTS] += 1
            if 1 <= status // 100 <= 5:
                view[STATUS + status // 100 - 1] += 1
            view[BUCKETS + bucket] += 1
            view[DURATION_US] += int(seconds * 1_000_000)

    def websocket(self, received: bool) -> None:
        with self._lock:
            self._view[WS_RECEIVED if received else WS_SENT] += 1

    def sample(self, connections: int, in_flight: int) -> None:
        """The gauges, as the worker sees them now (ten times a second)."""
        self._view[CONNECTIONS] = connections
        self._view[IN_FLIGHT] = in_flight


class SharedCounters:
    """``count`` regions in memory shared with the processes forked after it, and
    the total of the regions whose workers have gone."""

    def __init__(self, count: int) -> None:
        self._memory = mmap.mmap(-1, _SIZE * (count + 1))  # MAP_SHARED|MAP_ANONYMOUS
        self._view = memoryview(self._memory).cast("q")
        self.count = count
        self._free = list(range(count))

    def region(self, index: int) -> Region:
        return Region(self._view[(index + 1) * SLOTS:(index + 2) * SLOTS])

    def take(self) -> Optional[int]:
        """A free region's index for a new worker (None: all taken)."""
        return self._free.pop(0) if self._free else None

    def give_back(self, index: int) -> None:
        """A worker has exited: keep its counters in the total, free its region."""
        total, gone = self._view[0:SLOTS], self._view[(index + 1) * SLOTS:(index + 2) * SLOTS]
        for slot in _KEPT:
            total[slot] += gone[slot]
        for slot in range(SLOTS):
            gone[slot] = 0
        self._free.append(index)

    def totals(self) -> List[int]:
        """Every slot summed over the total and the live regions."""
        sums = [0] * SLOTS
        for index in range(self.count + 1):
            region = self._view[index * SLOTS:(index + 1) * SLOTS]
            for slot in range(SLOTS):
                sums[slot] += region[slot]
        return sums


Sample = Tuple[Dict[str, str], float]


def families(totals: List[int], workers: int) -> List[Tuple[str, str, str, List[Sample]]]:
    """(name, type, help, samples) of each metric, from :meth:`SharedCounters.totals`;
    a histogram's samples are its cumulative buckets, then its sum."""
    buckets: List[Sample] = []
    cumulative = 0
    for i, bound in enumerate((*BUCKET_BOUNDS, float("inf"))):
        cumulative += totals[BUCKETS + i]
        buckets.append(({"le": "+Inf" if bound == float("inf") else repr(bound)}, float(cumulative)))
    return [
        ("pymongoose_requests", "counter", "HTTP responses completed.", [({}, totals[REQUESTS])]),
        ("pymongoose_responses", "counter", "HTTP responses completed, by status class.",
         [({"status": f"{n}xx"}, totals[STATUS + n - 1]) for n in range(1, 6)]),
        ("pymongoose_requests_in_flight", "gauge", "HTTP requests being handled.", [({}, totals[IN_FLIGHT])]),
        ("pymongoose_request_duration_seconds", "histogram", "From a request to its response's end.",
         [*buckets, ({}, totals[DURATION_US] / 1e6)]),
        ("pymongoose_connections", "gauge", "Connections open.", [({}, totals[CONNECTIONS])]),
        ("pymongoose_websocket_messages", "counter", "WebSocket messages.",
         [({"direction": "received"}, totals[WS_RECEIVED]), ({"direction": "sent"}, totals[WS_SENT])]),
        ("pymongoose_workers", "gauge", "Worker processes running.", [({}, workers)]),
    ]


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(totals: List[int], workers: int) -> bytes:
    """The metrics in Prometheus' text format: written by prometheus_client when it
    is installed, here otherwise."""
    try:
        return _by_prometheus_client(families(totals, workers))
    except ImportError:
        pass
    lines: List[str] = []
    for name, kind, text, samples in families(totals, workers):
        shown = name + "_total" if kind == "counter" else name
        lines += [f"# HELP {shown} {text}", f"# TYPE {shown} {kind}"]
        if kind == "histogram":
            *buckets, (_, total) = samples
            lines += [f'{name}_bucket{{le="{labels["le"]}"}} {value}' for labels, value in buckets]
            lines += [f"{name}_count {buckets[-1][1]}", f"{name}_sum {total}"]
            continue
        for labels, value in samples:
            label_text = ",".join(f'{key}="{label}"' for key, label in labels.items())
            lines.append(f"{shown}{{{label_text}}} {float(value)}" if label_text else f"{shown} {float(value)}")
    return ("\n".join(lines) + "\n").encode()


def _by_prometheus_client(metrics: List[Tuple[str, str, str, List[Sample]]]) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    made: List[Any] = []
    for name, kind, text, samples in metrics:
        if kind == "histogram":
            *buckets, (_, total) = samples
            made.append(HistogramMetricFamily(name, text, buckets=[(labels["le"], value) for labels, value in buckets],
                                              sum_value=total))
            continue
        labels = sorted(samples[0][0])
        family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, text, labels=labels)
        for values, value in samples:
            family.add_metric([values[label] for label in labels], value)
        made.append(family)

    class Snapshot:
        def collect(self) -> Any:
            return iter(made)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot())
    return bytes(generate_latest(registry))


def serve(url: str, counters: SharedCounters, workers: Callable[[], int]) -> "ThreadingHTTPServer":
    """Answer ``GET`` on ``url``'s path with the metrics, on a thread of this process
    (the supervisor's); anything else is a 404. Returns the server (its
    ``shutdown()`` stops it).

    :raises ListenError: the address cannot be listened on.
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    parts = urlsplit(url)
    path = parts.path or "/metrics"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            if self.path.split("?", 1)[0] != path:
                self.send_error(404)
                return
            body = exposition(counters.totals(), workers())
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # the base class's names
            pass  # scrapes are not access lines

    try:
        server = ThreadingHTTPServer((parts.hostname or "127.0.0.1", parts.port or 0), Handler)
    except OSError as error:
        raise ListenError(f"Failed to listen on {url}: {error.strerror}") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="pymongoose-metrics", daemon=True).start()
    return server


def check_url(url: str) -> str:
    """``url`` if it is an ``http://host:port/path`` the endpoint can listen on.

    >>> check_url("http://127.0.0.1:9100/metrics")
    'http://127.0.0.1:9100/metrics'
    >>> check_url("https://0.0.0.0:9100/metrics")
    Traceback (most recent call last):
    ValueError: --metrics wants http://HOST:PORT/PATH, not 'https://0.0.0.0:9100/metrics'
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise ValueError(f"--metrics wants http://HOST:PORT/PATH, not {url!r}")
    return url
