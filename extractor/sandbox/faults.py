"""Reproducible fault injection: a spec like ``429:0.1,500:0.05,reset:0.02,slow:0.05`` turns into
per-request decisions drawn from a RNG seeded with (seed, request number).

Response faults (429, 500, 502, 503, reset, slow, truncate) are exclusive: at most one per
request. ``expire-url`` (a download URL born expired), ``job-error`` (a query or export ends
in error) and ``retry-after-date`` (a 429's Retry-After given as an HTTP date) are drawn
independently. The token endpoint is spared unless the spec holds ``auth:1``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

RESPONSE_FAULTS = ("429", "500", "502", "503", "reset", "slow", "truncate")
FLAG_FAULTS = ("expire-url", "job-error", "retry-after-date")
OPTIONS = ("auth",)


class FaultSpecError(ValueError):
    pass


@dataclass
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 42
    include_auth: bool = False
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, spec: str | None, seed: int = 42) -> FaultPlan:
        plan = cls(seed=seed)
        if not spec:
            return plan
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition(":")
            name = name.strip().lower()
            if name not in RESPONSE_FAULTS + FLAG_FAULTS + OPTIONS:
                known = ", ".join(RESPONSE_FAULTS + FLAG_FAULTS + OPTIONS)
                raise FaultSpecError(f"faults: unknown fault {name!r} (known: {known})")
            try:
                rate = float(value) if sep else 1.0
            except ValueError:
                raise FaultSpecError(f"faults: {name} needs a fraction like {name}:0.1, got {value!r}") from None
            if not 0.0 <= rate <= 1.0:
                raise FaultSpecError(f"faults: {name} fraction must be between 0 and 1, got {rate}")
            if name == "auth":
                plan.include_auth = rate > 0
            else:
                plan.rates[name] = rate
        if sum(plan.rates.get(k, 0.0) for k in RESPONSE_FAULTS) > 1.0:
            raise FaultSpecError("faults: the response fault fractions add up to more than 1")
        return plan

    @property
    def active(self) -> bool:
        return any(v > 0 for v in self.rates.values())

    def draw(self) -> set[str]:
        """Faults for the next request (thread-safe; the sequence depends only on the seed)."""
        with self._lock:
            self._counter += 1
            n = self._counter
        return self.decide(n)

    def decide(self, n: int) -> set[str]:
        rng = random.Random(f"{self.seed}:{n}")
        chosen: set[str] = set()
        roll, acc = rng.random(), 0.0
        for kind in RESPONSE_FAULTS:
            acc += self.rates.get(kind, 0.0)
            if roll < acc:
                chosen.add(kind)
                break
        for kind in FLAG_FAULTS:
            if rng.random() < self.rates.get(kind, 0.0):
                chosen.add(kind)
        return chosen
