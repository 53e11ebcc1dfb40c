"""The reward service's metrics: counters behind GET /metrics, as JSON or in Prometheus' text format.

Requests by path and status (counted by the guard, so refused requests count too), items scored, overload
rejections, the admitted-item gauge, cache hits and in-flight sharing, reward-model forwards and items per batcher,
verifier and judge outcomes by status, and latency percentiles of the last 10,000 successful score requests.
"""

import time
from collections import Counter, deque

from reward.batching import DynamicBatcher
from reward.cache import ResultCache


class ServiceMetrics:
    """Counters behind GET /metrics; latencies of the last 10,000 score requests for the percentiles."""

    def __init__(self):
        self.started = time.time()
        self.requests: Counter[tuple[str, int]] = Counter()  # (path, status) -> count
        self.items = 0
        self.rejected_overload = 0
        self.verifier_status: Counter[str] = Counter()
        self.judge_status: Counter[str] = Counter()  # ok | unparsable | timeout | error, per judge call
        self.latencies: deque[float] = deque(maxlen=10_000)

    def latency_summary(self) -> dict[str, float]:
        values = sorted(self.latencies)
        if not values:
            return {"count": 0}

        def pct(q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))]

        return {"count": len(values), "p50_ms": pct(0.5) * 1e3, "p90_ms": pct(0.9) * 1e3, "p99_ms": pct(0.99) * 1e3}

    def snapshot(self, *, pending_items: int, cache: ResultCache, batchers: dict[str, DynamicBatcher]) -> dict:
        """What GET /metrics returns: these counters plus the admission gauge, the cache's and the batchers' stats."""
        return {
            "uptime_s": time.time() - self.started,
            "requests": {f"{path} {status}": n for (path, status), n in sorted(self.requests.items())},
            "items": self.items,
            "rejected_overload": self.rejected_overload,
            "pending_items": pending_items,
            "cache": cache.stats(),
            "batching": {name: batcher.stats() for name, batcher in batchers.items()},
            "verifier_status": dict(self.verifier_status),
            "judge_status": dict(self.judge_status),
            "latency": self.latency_summary(),
        }


def prometheus_text(snapshot: dict) -> str:
    """The JSON metrics snapshot in the Prometheus text exposition format (counters and gauges)."""
    lines = []

    def metric(name: str, kind: str, value: float, labels: str = "") -> None:
        if f"# TYPE {name} " not in "\n".join(lines):
            lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")

    for key, count in snapshot["requests"].items():
        path, status = key.rsplit(" ", 1)
        metric("reward_requests_total", "counter", count, f'path="{path}",status="{status}"')
    metric("reward_items_total", "counter", snapshot["items"])
    metric("reward_overload_rejections_total", "counter", snapshot["rejected_overload"])
    metric("reward_pending_items", "gauge", snapshot["pending_items"])
    for key in ("hits", "shared_in_flight", "misses", "evictions"):
        metric(f"reward_cache_{key}_total", "counter", snapshot["cache"][key])
    metric("reward_cache_entries", "gauge", snapshot["cache"]["entries"])
    for name, stats in snapshot["batching"].items():
        metric("reward_rm_forwards_total", "counter", stats["forwards"], f'model="{name}"')
        metric("reward_rm_items_total", "counter", stats["items"], f'model="{name}"')
    for status, count in snapshot["verifier_status"].items():
        metric("reward_verifier_results_total", "counter", count, f'status="{status}"')
    for status, count in snapshot.get("judge_status", {}).items():
        metric("reward_judge_results_total", "counter", count, f'status="{status}"')
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        if key in snapshot["latency"]:
            metric("reward_score_latency_ms", "gauge", snapshot["latency"][key], f'quantile="{key[1:-3]}"')
    return "\n".join(lines) + "\n"
