"""Counters for ``/metrics`` in the Prometheus text format (version 0.0.4), kept by a small ASGI middleware."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

__all__ = ["Metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Request counts and latency by route and status, decisions by outcome, tick durations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.seconds: dict[str, float] = {}
        self.buckets: Counter[tuple[str, float]] = Counter()
        self.decisions: Counter[bool] = Counter()
        self.ticks = 0
        self.tick_seconds = 0.0
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """One finished request."""
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.seconds[route] = self.seconds.get(route, 0.0) + seconds
            for bound in _BUCKETS:
                if seconds <= bound:
                    self.buckets[(route, bound)] += 1

    def decision(self, allowed: bool) -> None:
        """One permission decision."""
        self.decisions[allowed] += 1

    def decisions_made(self, allowed: int, denied: int) -> None:
        """A batch's decisions, counted at once."""
        with self._lock:
            self.decisions[True] += allowed
            self.decisions[False] += denied

    def tick(self, seconds: float) -> None:
        """One tick through the API."""
        with self._lock:
            self.ticks += 1
            self.tick_seconds += seconds

    def render(self, tenants_loaded: int) -> str:
        """The text exposition."""
        lines = ["# HELP regelwerk_http_requests_total HTTP requests by method, route and status.",
                 "# TYPE regelwerk_http_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'regelwerk_http_requests_total{{method="{method}",route="{route}",'
                             f'status="{status}"}} {n}')
            lines += ["# HELP regelwerk_http_request_seconds Request latency by route.",
                      "# TYPE regelwerk_http_request_seconds histogram"]
            counts: Counter[str] = Counter()
            for (_m, route, _s), n in self.requests.items():
                counts[route] += n
            for route in sorted(counts):
                for bound in _BUCKETS:
                    lines.append(f'regelwerk_http_request_seconds_bucket{{route="{route}",le="{bound}"}} '
                                 f'{self.buckets[(route, bound)]}')
                lines.append(f'regelwerk_http_request_seconds_bucket{{route="{route}",le="+Inf"}} {counts[route]}')
                total = self.seconds.get(route, 0.0)
                lines.append(f'regelwerk_http_request_seconds_sum{{route="{route}"}} {total:.6f}')
                lines.append(f'regelwerk_http_request_seconds_count{{route="{route}"}} {counts[route]}')
            lines += ["# HELP regelwerk_decisions_total Permission decisions by outcome.",
                      "# TYPE regelwerk_decisions_total counter",
                      f'regelwerk_decisions_total{{allowed="true"}} {self.decisions[True]}',
                      f'regelwerk_decisions_total{{allowed="false"}} {self.decisions[False]}',
                      "# HELP regelwerk_ticks_total Ticks run through the API.",
                      "# TYPE regelwerk_ticks_total counter", f"regelwerk_ticks_total {self.ticks}",
                      "# HELP regelwerk_tenants_loaded Tenants with a running engine in this process.",
                      "# TYPE regelwerk_tenants_loaded gauge", f"regelwerk_tenants_loaded {tenants_loaded}",
                      "# HELP regelwerk_start_time_seconds When this process started.",
                      "# TYPE regelwerk_start_time_seconds gauge", f"regelwerk_start_time_seconds {self.started:.0f}"]
        return "\n".join(lines) + "\n"

    def middleware_class(self) -> Any:
        """A pure ASGI middleware class bound to these metrics (route templates, never raw paths, as labels)."""
        metrics = self

        class MetricsMiddleware:
            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                started = time.perf_counter()
                status = 500

                async def sending(message: Any) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = int(message["status"])
                    await send(message)

                try:
                    await self.app(scope, receive, sending)
                finally:
                    route = getattr(scope.get("route"), "path", "unmatched")
                    metrics.observe(scope["method"], route, status, time.perf_counter() - started)

        return MetricsMiddleware
