"""Token Flex rate limits: a token bucket per user (burst 50, refilled 5 per minute) and a cap
on outstanding export requests. Durations are scaled by the sandbox's time_scale."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

SUSTAINED_PER_MINUTE = 5
BURST = 50
MAX_OUTSTANDING_EXPORTS = 50


@dataclass
class RateLimiter:
    time_scale: float = 1.0
    per_minute: float = SUSTAINED_PER_MINUTE
    burst: int = BURST
    clock: callable = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def refill_per_second(self) -> float:
        return self.per_minute / (60.0 * self.time_scale)

    def acquire(self, key: str) -> float:
        """Take one request from ``key``'s bucket; returns 0 if allowed, else seconds to wait."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.refill_per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.refill_per_second


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After in whole seconds (at least 1), as HTTP requires."""
    return str(max(1, math.ceil(wait_seconds)))
