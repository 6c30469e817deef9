"""Retry delays: how long to wait before attempt N+1 after attempt N failed.

Contract: ``BackoffPolicy.delay(attempt)`` returns seconds (float >= 0) for the attempt that
just failed (1-based):
- Exponential: full jitter, ``uniform(0, min(cap, base * 2**(attempt-1)))``;
- Fixed: ``base`` every time;
- Schedule: the explicit list, e.g. ``0,60,300,900,3600``; past its end the last value repeats.
A ``retry_after`` from the error (``Retry-After`` / ``X-RateLimit-Reset``) wins over the policy,
bounded by ``MAX_DELAY``.

This module imports nothing from Frappe.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field

EXPONENTIAL = "Exponential"
FIXED = "Fixed"
SCHEDULE = "Schedule"
STRATEGIES = (EXPONENTIAL, FIXED, SCHEDULE)
MAX_DELAY = 7 * 24 * 3600.0


def parse_schedule(text: str | None) -> tuple[float, ...]:
	"""``"0, 60,300"`` -> ``(0.0, 60.0, 300.0)``; raises ``ValueError`` on anything else."""
	if not text or not text.strip():
		return ()
	delays = []
	for part in text.split(","):
		part = part.strip()
		try:
			value = float(part)
		except ValueError:
			raise ValueError(f"'{part}' is not a number of seconds") from None
		if value < 0 or value != value or value > MAX_DELAY:
			raise ValueError(f"{part} is not between 0 and {int(MAX_DELAY)} seconds")
		delays.append(value)
	return tuple(delays)


@dataclass(frozen=True)
class BackoffPolicy:
	strategy: str = EXPONENTIAL
	base: float = 10.0
	cap: float = 3600.0
	schedule: tuple[float, ...] = field(default_factory=tuple)

	def __post_init__(self):
		if self.strategy not in STRATEGIES:
			raise ValueError(
				f"Unknown backoff strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}"
			)
		if self.strategy == SCHEDULE and not self.schedule:
			raise ValueError("A Schedule backoff needs at least one delay, e.g. 0,60,300")
		if self.base < 0 or self.cap < 0:
			raise ValueError("Backoff base and cap cannot be negative")

	def delay(
		self, attempt: int, retry_after: float | None = None, rng: Callable[[], float] = random.random
	) -> float:
		if retry_after is not None:
			return min(max(float(retry_after), 0.0), MAX_DELAY)
		attempt = max(int(attempt), 1)
		if self.strategy == FIXED:
			return min(self.base, MAX_DELAY)
		if self.strategy == SCHEDULE:
			return self.schedule[min(attempt, len(self.schedule)) - 1]
		ceiling = min(self.cap, self.base * (2 ** min(attempt - 1, 62)))
		return rng() * ceiling
