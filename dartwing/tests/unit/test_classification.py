import socket
from email.utils import parsedate_to_datetime
from types import SimpleNamespace

import pytest

from dartwing.dartwing_core.background_jobs import classification as c
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

NOW = 1_800_000_000.0


def clock():
	return NOW


@pytest.mark.parametrize(
	"status,headers,kind,reason",
	[
		(401, {}, c.AUTH_ABORT, "authentication"),
		(403, {}, c.AUTH_ABORT, "authentication"),
		(403, {"X-RateLimit-Remaining": "5"}, c.AUTH_ABORT, "authentication"),
		(403, {"X-RateLimit-Remaining": "0"}, c.TRANSIENT, "rate_limited"),
		(429, {}, c.TRANSIENT, "rate_limited"),
		(408, {}, c.TRANSIENT, "request_timeout"),
		(500, {}, c.TRANSIENT, "server_error"),
		(503, {}, c.TRANSIENT, "server_error"),
		(400, {}, c.PERMANENT, "client_error"),
		(404, {}, c.PERMANENT, "client_error"),
		(422, {}, c.PERMANENT, "client_error"),
	],
)
def test_http_status_rules(status, headers, kind, reason):
	verdict = c.classify(HttpError(status, headers=headers), now=clock)
	assert (verdict.kind, verdict.reason, verdict.status_code) == (kind, reason, status)


def test_retry_after_seconds_and_http_date():
	assert c.classify(HttpError(429, headers={"Retry-After": "30"}), now=clock).retry_after == 30
	date = "Fri, 15 Jan 2027 08:00:10 GMT"
	epoch = parsedate_to_datetime(date).timestamp()
	verdict = c.classify(HttpError(503, headers={"retry-after": date}), now=lambda: epoch - 10)
	assert verdict.retry_after == pytest.approx(10)
	assert c.parse_retry_after("not a date") is None


def test_rate_limit_reset_epoch_and_relative():
	verdict = c.classify(
		HttpError(403, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW + 120))}),
		now=clock,
	)
	assert verdict.kind == c.TRANSIENT and verdict.retry_after == pytest.approx(120)
	assert c.parse_rate_limit_reset("15", now=clock) == 15
	assert c.parse_rate_limit_reset(str(NOW - 50), now=clock) == 0
	assert c.parse_rate_limit_reset("soon", now=clock) is None


def test_engine_signals():
	assert c.classify(JobCanceled()).kind == c.CANCELED
	assert c.classify(JobTimeout()).kind == c.TIMEOUT
	assert c.classify(JobInterrupted(), unknown_errors="Permanent") == c.Verdict(c.INTERRUPTED, "interrupted")
	assert not c.classify(JobInterrupted()).retryable, "a hand-back is not a retry"
	assert c.classify(TransientError("x", retry_after=9)) == c.Verdict(c.TRANSIENT, "transient", None, 9)
	assert c.classify(PermanentError("x")).kind == c.PERMANENT
	assert c.classify(JobTimeout()).retryable and not c.classify(PermanentError()).retryable
	assert c.classify(HeartbeatLost(), unknown_errors="Permanent") == c.Verdict(c.TRANSIENT, "heartbeat_lost")


def test_a_call_that_cannot_be_made_is_unrunnable_whatever_the_job_type_says():
	for unknown_errors in ("Transient", "Permanent"):
		verdict = c.classify(UnrunnableCall("x"), unknown_errors=unknown_errors)
		assert verdict == c.Verdict(c.UNRUNNABLE, "signature") and not verdict.retryable
	# A TypeError raised inside the function is the function's own failure, not this.
	assert c.classify(TypeError("x")).kind == c.TRANSIENT


def test_network_errors_are_transient():
	assert c.classify(ConnectionRefusedError()).kind == c.TRANSIENT
	assert c.classify(TimeoutError()).kind == c.TRANSIENT
	assert c.classify(TimeoutError()).kind == c.TRANSIENT


def _fake_class(module: str, name: str, base=Exception):
	cls = type(name, (base,), {})
	cls.__module__ = module
	cls.__qualname__ = name
	return cls


def test_frappe_errors_by_class_hierarchy():
	validation = _fake_class("frappe.exceptions", "ValidationError")
	link_error = type("LinkValidationError", (validation,), {})
	permission = _fake_class("frappe.exceptions", "PermissionError")
	assert c.classify(validation("bad")).kind == c.PERMANENT
	assert c.classify(link_error("bad")).kind == c.PERMANENT
	assert c.classify(permission()).kind == c.PERMANENT


def test_database_errors_by_code():
	operational = _fake_class("pymysql.err", "OperationalError")
	assert c.classify(operational(1213, "Deadlock found")).kind == c.TRANSIENT
	assert c.classify(operational(2006, "MySQL server has gone away")).kind == c.TRANSIENT
	assert c.classify(operational(1054, "Unknown column"), unknown_errors="Permanent").kind == c.PERMANENT


def test_requests_style_exception_with_response():
	Response = SimpleNamespace(status_code=429, headers={"Retry-After": "3"})

	error = _fake_class("requests.exceptions", "HTTPError")()
	error.response = Response
	assert c.classify(error) == c.Verdict(c.TRANSIENT, "rate_limited", 429, 3)


def test_unknown_errors_follow_the_job_type():
	assert c.classify(KeyError("x")).kind == c.TRANSIENT
	assert c.classify(KeyError("x"), unknown_errors="Permanent").kind == c.PERMANENT


def test_http_error_from_response_keeps_headers():
	response = SimpleNamespace(status_code=403, headers={"X-RateLimit-Remaining": "0"}, text="slow down")
	error = HttpError.from_response(response)
	assert error.header("x-ratelimit-remaining") == "0"
	assert "slow down" in str(error)
