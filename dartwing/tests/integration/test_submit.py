"""Submitting: the checks of SPEC 4.3 in order, preconditions against a real local HTTP server,
rate limits, atomic dedup under 200 concurrent submits, and bad input that leaves nothing behind."""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import frappe
import pytest
from frappe.utils import add_to_date

from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.api_errors import (
	DuplicateJobError,
	JobRateLimitedError,
	OrganizationSuspendedError,
	PreconditionFailedError,
	PreconditionUnavailableError,
)
from dartwing.tests.integration import helpers
from dartwing.tests.integration.local_http import ScriptedServer


def _job_count(organization: str) -> int:
	frappe.db.rollback()
	return frappe.db.count("Background Job", {"organization": organization})


class CapturedLogs(logging.Handler):
	def __init__(self):
		super().__init__(logging.DEBUG)
		self.records: list[logging.LogRecord] = []

	def emit(self, record):
		self.records.append(record)

	def __enter__(self):
		from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger

		self.logger = jobs_logger()
		self.logger.addHandler(self)
		return self

	def __exit__(self, *exc):
		self.logger.removeHandler(self)


@pytest.fixture
def token_server():
	with ScriptedServer() as server:
		server.routes["/check"] = (lambda handler: (200, {}, "ok", 0) if handler.headers.get("Authorization") == "Bearer good" else (401, {}, "bad token", 0))  # fmt: skip
		server.routes["/slow"] = (200, {}, "ok", 3)
		yield server


def test_precondition_accepts_a_valid_token(org, job_type_factory, token_server):
	guarded = job_type_factory(precondition="demo_token_check", precondition_timeout_seconds=2)
	result = helpers.submit_as(
		org.user, guarded, {"token_check_url": token_server.url("/check"), "token": "good"}
	)
	assert result["status"] == states.QUEUED
	assert token_server.requests[-1] == ("/check", "Bearer good")


def test_precondition_refusal_creates_nothing_and_logs_a_warning(org, job_type_factory, token_server):
	guarded = job_type_factory(precondition="demo_token_check", precondition_timeout_seconds=2)
	with CapturedLogs() as logs, pytest.raises(PreconditionFailedError, match="refused") as raised:
		helpers.submit_as(
			org.user,
			guarded,
			{"token_check_url": token_server.url("/check"), "token": "bad", "subject": "octocat"},
		)
	assert raised.value.http_status_code == 412
	assert _job_count(org.name) == 0
	warnings = [
		r for r in logs.records if r.levelno == logging.WARNING and "precondition_rejected" in str(r.msg)
	]
	assert warnings and "octocat" in str(warnings[0].msg) and "parameters_hash" in str(warnings[0].msg)


def test_a_slow_precondition_times_out_as_a_temporary_failure(org, job_type_factory, token_server):
	guarded = job_type_factory(precondition="demo_token_check", precondition_timeout_seconds=0.5)
	started = time.monotonic()
	with pytest.raises(PreconditionUnavailableError) as raised:
		helpers.submit_as(org.user, guarded, {"token_check_url": token_server.url("/slow"), "token": "good"})
	assert raised.value.http_status_code == 503
	assert time.monotonic() - started < 2
	assert _job_count(org.name) == 0


def test_preconditions_of_different_users_do_not_wait_on_each_other(job_type_factory, token_server):
	guarded = job_type_factory(precondition="demo_token_check", precondition_timeout_seconds=10)
	(org_a, user_a), (org_b, user_b) = helpers.make_org_with_user(), helpers.make_org_with_user()
	site = frappe.local.site
	finished = {}

	def submit(user, organization, path):
		frappe.init(site=site, sites_path=helpers.SITES_PATH)
		frappe.connect()
		try:
			helpers.submit_as(
				user,
				guarded,
				{"token_check_url": token_server.url(path), "token": "good"},
				organization=organization,
			)
			finished[user] = time.monotonic()
		finally:
			frappe.destroy()

	try:
		started = time.monotonic()
		slow_calls = sum(path == "/slow" for path, _ in token_server.requests)
		slow = threading.Thread(target=submit, args=(user_a, org_a, "/slow"))
		slow.start()
		# The slow check is in progress (its request reached the server) before the fast one starts.
		deadline = time.monotonic() + 10
		while (
			sum(path == "/slow" for path, _ in token_server.requests) == slow_calls
			and time.monotonic() < deadline
		):
			time.sleep(0.01)
		assert (
			sum(path == "/slow" for path, _ in token_server.requests) > slow_calls
		), "the slow check never ran"
		fast = threading.Thread(target=submit, args=(user_b, org_b, "/check"))
		fast_started = time.monotonic()
		fast.start()
		fast.join()
		assert finished[user_b] - fast_started < 1.5, "the fast precondition waited behind the slow one"
		assert slow.is_alive()
		slow.join()
		assert finished[user_a] - started >= 3
	finally:
		helpers.cleanup_org(org_a)
		helpers.cleanup_org(org_b)


def test_per_user_rate_limit_of_a_job_type(org, job_type_factory):
	limited = job_type_factory(rate_limit_count=2, rate_limit_window_seconds=60)
	helpers.start_well_inside_a_rate_window()
	helpers.submit_as(org.user, limited, {"i": 1})
	helpers.submit_as(org.user, limited, {"i": 2})
	with pytest.raises(JobRateLimitedError) as raised:
		helpers.submit_as(org.user, limited, {"i": 3})
	assert raised.value.http_status_code == 429 and 1 <= raised.value.retry_after <= 61
	assert _job_count(org.name) == 2


def test_dedup_returns_the_active_job_and_strict_mode_refuses(org, job_type_factory):
	deduped = job_type_factory(dedup_window_seconds=60)
	first = helpers.submit_as(org.user, deduped, {"b": 2, "a": 1})
	again = helpers.submit_as(org.user, deduped, {"a": 1, "b": 2})
	assert again == {"job_id": first["job_id"], "status": first["status"], "deduplicated": True}
	with pytest.raises(DuplicateJobError) as raised:
		helpers.submit_as(org.user, deduped, {"a": 1, "b": 2}, strict=True)
	assert raised.value.http_status_code == 409
	different = helpers.submit_as(org.user, deduped, {"a": 1, "b": 3})
	assert different["job_id"] != first["job_id"]
	assert "Deduplicated" in helpers.events(first["job_id"])


def test_dedup_window_after_finish_and_zero_window_means_off(org, job_type_factory):
	deduped = job_type_factory(dedup_window_seconds=2)
	first = helpers.submit_as(org.user, deduped, {"w": 1})
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.submit_as(org.user, deduped, {"w": 1})["job_id"] == first["job_id"]
	# The window passes: the job finished more than 2 s ago.
	finished_at = helpers.job(first["job_id"]).finished_at
	frappe.db.set_value(
		"Background Job", first["job_id"], "finished_at", add_to_date(finished_at, seconds=-3)
	)
	frappe.db.commit()
	assert helpers.submit_as(org.user, deduped, {"w": 1})["job_id"] != first["job_id"]

	plain = job_type_factory(dedup_window_seconds=0)
	assert (
		helpers.submit_as(org.user, plain, {"w": 1})["job_id"]
		!= helpers.submit_as(org.user, plain, {"w": 1})["job_id"]
	)


def test_200_concurrent_identical_submits_make_exactly_one_job(org, job_type_factory):
	deduped = job_type_factory(dedup_window_seconds=300)
	site = frappe.local.site
	# MariaDB's default max_connections is 151: 120 connections race at once, then 80 more.
	waves = (120, 80)
	results, errors = [], []

	def submit(barrier):
		frappe.init(site=site, sites_path=helpers.SITES_PATH)
		try:
			frappe.connect()
			barrier.wait(timeout=60)
			results.append(helpers.submit_as(org.user, deduped, {"same": "parameters"}))
		except Exception as exc:
			errors.append(repr(exc))
		finally:
			frappe.destroy()

	for size in waves:
		barrier = threading.Barrier(size)
		with ThreadPoolExecutor(max_workers=size) as pool:
			for _ in range(size):
				pool.submit(submit, barrier)

	assert not errors, errors[:3]
	assert len(results) == 200
	assert len({r["job_id"] for r in results}) == 1
	assert sum(not r["deduplicated"] for r in results) == 1
	assert _job_count(org.name) == 1


@pytest.mark.parametrize(
	"kwargs,error,message",
	[
		({"job_type": "no_such_type"}, frappe.ValidationError, "does not exist"),
		({"parameters": "[1, 2]"}, frappe.ValidationError, "JSON object"),
		({"parameters": "{not json"}, frappe.ValidationError, "JSON object"),
		({"parameters": {"blob": "x" * (70 * 1024)}}, frappe.ValidationError, "the limit is"),
		({"priority": "Urgent"}, frappe.ValidationError, "Priority must be"),
		({"run_at": "next tuesday-ish"}, frappe.ValidationError, "not a date"),
		({"depends_on": ["JOB-0000-99999"]}, frappe.DoesNotExistError, "not found"),
		({"reference_doctype": "ToDo"}, frappe.ValidationError, "both"),
		({"organization": "no-such-org"}, frappe.DoesNotExistError, "not found"),
		({"correlation_id": "c" * 141}, frappe.ValidationError, "at most 140 characters"),
		({"correlation_id": 12345}, frappe.ValidationError, "at most 140 characters"),
	],
)
def test_bad_input_is_refused_and_leaves_nothing(org, kwargs, error, message):
	kwargs = {"job_type": "demo_echo", "parameters": {"ok": 1}, **kwargs}
	job_type = kwargs.pop("job_type")
	parameters = kwargs.pop("parameters")
	with pytest.raises(error, match=message):
		helpers.submit_as(org.user, job_type, parameters, **kwargs)
	frappe.local.message_log = []
	assert _job_count(org.name) == 0


def test_organization_rules(org):
	outsider_org = helpers.make_org()
	suspended = helpers.make_org(members=[org.user], status="Suspended")
	try:
		with pytest.raises(frappe.DoesNotExistError, match=f"Organization {outsider_org} not found"):
			helpers.submit_as(org.user, "demo_echo", {}, organization=outsider_org)
		with pytest.raises(OrganizationSuspendedError, match="suspended"):
			helpers.submit_as(org.user, "demo_echo", {}, organization=suspended)
		with pytest.raises(frappe.PermissionError):
			helpers.submit_as("Guest", "demo_echo", {})
		assert _job_count(outsider_org) == 0 and _job_count(suspended) == 0
		# One membership: the organization may be left out.
		assert helpers.submit_as(org.user, "demo_echo", {"implicit": 1}, organization=org.name)["job_id"]
	finally:
		frappe.local.message_log = []
		helpers.cleanup_org(outsider_org)
		helpers.cleanup_org(suspended)


def test_required_role_and_disabled_job_types(org, job_type_factory):
	needs_role = job_type_factory(required_role="System Manager")
	disabled = job_type_factory(enabled=0)
	with pytest.raises(frappe.PermissionError, match="needs the role"):
		helpers.submit_as(org.user, needs_role, {})
	with pytest.raises(frappe.ValidationError, match="disabled"):
		helpers.submit_as(org.user, disabled, {})
	frappe.local.message_log = []
	assert _job_count(org.name) == 0
