"""Per-user rate limits, counted in Redis in fixed windows.

Contract: ``hit(scope, user, limit, window_seconds)`` counts one call and raises
``JobRateLimitedError`` (HTTP 429, with ``retry_after`` seconds and a ``Retry-After`` header on
HTTP responses) once ``limit`` calls were made in the current window. ``limit <= 0`` means no limit.
"""

import time

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs.api_errors import JobRateLimitedError


def hit(scope: str, user: str, limit: int, window_seconds: int) -> None:
	if limit <= 0 or window_seconds <= 0:
		return
	now = time.time()
	window_start = int(now // window_seconds) * window_seconds
	key = frappe.cache.make_key(f"dartwing:rl:{scope}:{user}:{window_start}")
	pipe = frappe.cache.pipeline()
	pipe.incr(key)
	pipe.expire(key, window_seconds + 1)
	count = pipe.execute()[0]
	if count > limit:
		retry_after = max(int(window_start + window_seconds - now) + 1, 1)
		frappe.local.dartwing_retry_after = retry_after
		raise JobRateLimitedError(
			_("Rate limit reached for {0}: {1} calls per {2} s. Try again in {3} s.").format(
				scope, limit, window_seconds, retry_after
			),
			retry_after=retry_after,
		)


def add_retry_after_header(response=None, request=None) -> None:
	"""``after_request`` hook: tell HTTP clients when to come back after a 429."""
	retry_after = getattr(frappe.local, "dartwing_retry_after", None)
	if retry_after and response is not None:
		response.headers["Retry-After"] = str(retry_after)
