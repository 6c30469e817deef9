"""Error classification: what a handler's exception means for the job.

Contract: ``classify(exc, unknown_errors="Transient", now=time.time)`` returns a ``Verdict``:
- ``CANCELED`` for ``JobCanceled``; ``TIMEOUT`` for ``JobTimeout`` (the job's own time limit);
  ``INTERRUPTED`` for ``JobInterrupted`` (its worker is stopping: handed back, no attempt counted);
- ``TRANSIENT`` (reason "heartbeat_lost") for ``HeartbeatLost``;
- ``UNRUNNABLE`` for ``UnrunnableCall`` (the job's parameters no longer bind to its function): no
  attempt can succeed, the job is dead-lettered at once;
- ``AUTH_ABORT`` for HTTP 401 and for HTTP 403 that is not a rate limit: the job stops at once,
  with no further attempts, and its concurrency slot is freed;
- ``PERMANENT`` for ``PermanentError``, Frappe's ``ValidationError`` / ``PermissionError`` /
  ``DoesNotExistError`` and HTTP 400/404/422 (and other 4xx);
- ``TRANSIENT`` for ``TransientError``, connection errors, timeouts of calls made by the handler,
  database deadlocks / lock waits / lost connections, HTTP 408/429/5xx and HTTP 403 with
  ``X-RateLimit-Remaining: 0``. ``Retry-After`` (seconds or an HTTP date) or
  ``X-RateLimit-Reset`` (epoch seconds or seconds) sets ``retry_after``;
- anything else: ``unknown_errors`` ("Transient" or "Permanent", from the Job Type).

``reason`` tells rate limiting ("rate_limited") and authorization ("authentication") apart in logs.
Classes are recognised by their place in the exception's MRO, so this module imports neither
Frappe nor requests nor pymysql.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from dartwing.dartwing_core.background_jobs.handler_errors import (
	HeartbeatLost,
	HttpError,
	JobCanceled,
	JobInterrupted,
	JobTimeout,
	PermanentError,
	TransientError,
	UnrunnableCall,
)

TRANSIENT = "transient"
PERMANENT = "permanent"
AUTH_ABORT = "auth_abort"
TIMEOUT = "timeout"
CANCELED = "canceled"
UNRUNNABLE = "unrunnable"
INTERRUPTED = "interrupted"

_FRAPPE_PERMANENT = {
	"frappe.exceptions.ValidationError",
	"frappe.exceptions.PermissionError",
	"frappe.exceptions.DoesNotExistError",
}
_FRAPPE_TRANSIENT = {
	"frappe.exceptions.QueryDeadlockError",
	"frappe.exceptions.QueryTimeoutError",
	"frappe.exceptions.RetryBackgroundJobError",
	"frappe.exceptions.TooManyRequestsError",
}
_TRANSIENT_NAMES = {
	"builtins.ConnectionError",
	"builtins.TimeoutError",
	"socket.timeout",
	"requests.exceptions.ConnectionError",
	"requests.exceptions.Timeout",
	"urllib3.exceptions.HTTPError",
	"http.client.RemoteDisconnected",
	"redis.exceptions.ConnectionError",
	"redis.exceptions.TimeoutError",
}
# pymysql / MariaDB error codes worth another attempt: deadlock, lock wait timeout,
# server gone away, lost connection, can't connect, server shutting down, too many connections.
_TRANSIENT_DB_CODES = {1213, 1205, 2006, 2013, 2003, 1053, 1040, 2002}
_DB_ERROR_NAMES = {"pymysql.err.OperationalError", "pymysql.err.InternalError", "pymysql.err.InterfaceError"}
_MAX_RETRY_AFTER = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Verdict:
	kind: str
	reason: str = ""
	status_code: int | None = None
	retry_after: float | None = None

	@property
	def retryable(self) -> bool:
		return self.kind in (TRANSIENT, TIMEOUT)


def _mro_names(exc: BaseException) -> set[str]:
	return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
	"""``Retry-After``: delay in seconds or an HTTP date."""
	if value is None or not str(value).strip():
		return None
	value = str(value).strip()
	try:
		return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
	except ValueError:
		pass
	try:
		when = parsedate_to_datetime(value).timestamp()
	except (TypeError, ValueError, IndexError):
		return None
	return min(max(when - now(), 0.0), _MAX_RETRY_AFTER)


def parse_rate_limit_reset(value: str | None, now: Callable[[], float] = time.time) -> float | None:
	"""``X-RateLimit-Reset``: epoch seconds (GitHub style) or, when small, seconds from now."""
	if value is None or not str(value).strip():
		return None
	try:
		number = float(str(value).strip())
	except ValueError:
		return None
	delay = number - now() if number > 1_000_000_000 else number
	return min(max(delay, 0.0), _MAX_RETRY_AFTER)


def classify_http(status_code: int, headers: dict[str, str], now: Callable[[], float] = time.time) -> Verdict:
	headers = {k.lower(): v for k, v in headers.items()}
	retry_after = parse_retry_after(headers.get("retry-after"), now)
	if retry_after is None:
		retry_after = parse_rate_limit_reset(headers.get("x-ratelimit-reset"), now)

	if status_code == 403 and str(headers.get("x-ratelimit-remaining", "")).strip() == "0":
		return Verdict(TRANSIENT, "rate_limited", status_code, retry_after)
	if status_code == 429:
		return Verdict(TRANSIENT, "rate_limited", status_code, retry_after)
	if status_code in (401, 403):
		return Verdict(AUTH_ABORT, "authentication", status_code)
	if status_code == 408 or status_code >= 500:
		return Verdict(
			TRANSIENT, "server_error" if status_code >= 500 else "request_timeout", status_code, retry_after
		)
	return Verdict(PERMANENT, "client_error", status_code)


def _response_of(exc: BaseException):
	response = getattr(exc, "response", None)
	if response is not None and isinstance(getattr(response, "status_code", None), int):
		return response
	return None


def classify(
	exc: BaseException, unknown_errors: str = "Transient", now: Callable[[], float] = time.time
) -> Verdict:
	if isinstance(exc, JobCanceled):
		return Verdict(CANCELED, "canceled")
	if isinstance(exc, JobTimeout):
		return Verdict(TIMEOUT, "timeout")
	if isinstance(exc, JobInterrupted):
		return Verdict(INTERRUPTED, "interrupted")
	if isinstance(exc, HeartbeatLost):
		return Verdict(TRANSIENT, "heartbeat_lost")
	if isinstance(exc, UnrunnableCall):
		return Verdict(UNRUNNABLE, "signature")
	if isinstance(exc, HttpError):
		return classify_http(exc.status_code, exc.headers, now)
	if isinstance(exc, TransientError):
		return Verdict(TRANSIENT, "transient", retry_after=exc.retry_after)
	if isinstance(exc, PermanentError):
		return Verdict(PERMANENT, "permanent")

	response = _response_of(exc)
	if response is not None:
		return classify_http(response.status_code, dict(response.headers or {}), now)

	names = _mro_names(exc)
	if names & _FRAPPE_TRANSIENT or names & _TRANSIENT_NAMES:
		return Verdict(TRANSIENT, "connection" if "builtins.ConnectionError" in names else "transient")
	if names & _DB_ERROR_NAMES:
		code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
		if code in _TRANSIENT_DB_CODES:
			return Verdict(TRANSIENT, "database")
	if names & _FRAPPE_PERMANENT:
		return Verdict(PERMANENT, "validation")
	if unknown_errors == "Permanent":
		return Verdict(PERMANENT, "unknown")
	return Verdict(TRANSIENT, "unknown")
