"""Failures and durability with real workers: retries, dead letter, HTTP classification against a
real local server, timeouts, cancellation, SIGKILLed workers, a flushed Redis, pause/resume."""

import logging
import time
from datetime import datetime, timedelta, timezone

import frappe
import pytest
from frappe.utils import now_datetime
from frappe.utils.background_jobs import get_queue, get_redis_conn

from dartwing.dartwing_core.background_jobs import (
	cancellation,
	clock,
	manual_retry,
	pausing,
	reaper,
	retry_queue,
	states,
)
from dartwing.dartwing_core.background_jobs.settings import SETTINGS_DOCTYPE, clear_engine_cache
from dartwing.tests.integration import helpers
from dartwing.tests.integration.local_http import ScriptedServer
from dartwing.tests.integration.test_submit import CapturedLogs

FAST_RETRIES = {
	"handler": "demo_fail",
	"max_retries": 2,
	"backoff_strategy": "Schedule",
	"backoff_schedule": "0",
}


@pytest.fixture
def fast_recovery():
	"""Heartbeats every second, a worker presumed dead after 4 s without one."""
	before = {
		k: frappe.db.get_single_value(SETTINGS_DOCTYPE, k)
		for k in ("heartbeat_interval_seconds", "stale_heartbeat_seconds")
	}
	frappe.db.set_single_value(
		SETTINGS_DOCTYPE, {"heartbeat_interval_seconds": 1, "stale_heartbeat_seconds": 4}
	)
	clear_engine_cache()
	frappe.db.commit()
	yield
	frappe.db.set_single_value(SETTINGS_DOCTYPE, before)
	clear_engine_cache()
	frappe.db.commit()


def test_transient_errors_retry_then_succeed(org, job_type_factory):
	flaky = job_type_factory(**FAST_RETRIES)
	job = helpers.submit_as(org.user, flaky, {"fail_times": 2, "error": "transient"})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	row = helpers.job(job)
	assert row.status == states.COMPLETED and row.attempt == 3
	assert frappe.parse_json(row.result) == {"succeeded_on_attempt": 3}
	assert helpers.events(job).count("Retry Scheduled") == 2


def test_attempts_exhausted_go_to_dead_letter_and_a_manager_retry_with_edits_succeeds(org, job_type_factory):
	flaky = job_type_factory(**FAST_RETRIES)
	job = helpers.submit_as(org.user, flaky, {"fail_times": 9, "error": "transient"})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	row = helpers.job(job)
	assert row.status == states.DEAD_LETTER and row.attempt == 3 and row.error_type == "TransientError"

	assert manual_retry.retry(job, parameters={"fail_times": 0}) == states.QUEUED
	frappe.db.commit()
	assert helpers.run_burst_worker().returncode == 0
	row = helpers.job(job)
	assert row.status == states.COMPLETED and row.attempt == 1
	assert frappe.parse_json(row.parameters) == {"fail_times": 0}
	with pytest.raises(frappe.ValidationError, match="Only Failed"):
		manual_retry.retry(job)


def test_permanent_errors_fail_at_once(org, job_type_factory):
	flaky = job_type_factory(**FAST_RETRIES)
	job = helpers.submit_as(org.user, flaky, {"error": "permanent"})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	row = helpers.job(job)
	assert row.status == states.FAILED and row.attempt == 1 and "demo_fail attempt 1" in row.error_message
	assert "Traceback" in row.traceback


def test_a_delayed_retry_waits_for_the_retry_queue(org, job_type_factory):
	slow_retry = job_type_factory(**{**FAST_RETRIES, "backoff_schedule": "300"})
	job = helpers.submit_as(org.user, slow_retry, {"fail_times": 1})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	row = helpers.job(job)
	assert row.status == states.RETRYING
	assert timedelta(seconds=290) < row.next_retry_at - now_datetime() < timedelta(seconds=301)
	assert retry_queue.requeue_due_retries() == 0
	frappe.db.set_value("Background Job", job, "next_retry_utc", clock.utc_now() - timedelta(seconds=1))
	frappe.db.commit()
	assert retry_queue.requeue_due_retries() == 1
	assert retry_queue.requeue_due_retries() == 0
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(job).status == states.COMPLETED


@pytest.fixture
def http_server():
	with ScriptedServer() as server:
		yield server


def test_http_401_aborts_at_once_logs_and_frees_the_concurrency_slot(org, job_type_factory, http_server):
	http_server.routes["/repo"] = (401, {}, "bad credentials", 0)
	http_server.routes["/ok"] = (200, {}, "fine", 0)
	keyed = job_type_factory(
		handler="demo_http",
		max_retries=3,
		backoff_strategy="Schedule",
		backoff_schedule="0",
		concurrency_key_template="{account}",
	)
	denied = helpers.submit_as(org.user, keyed, {"account": "a", "url": http_server.url("/repo")})["job_id"]
	waiting = helpers.submit_as(org.user, keyed, {"account": "a", "url": http_server.url("/ok")})["job_id"]
	assert helpers.job(waiting).status == states.PENDING
	with CapturedLogs() as logs:
		assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(denied).status == states.FAILED and helpers.job(denied).attempt == 1
	assert [path for path, _ in http_server.requests].count("/repo") == 1, "no further calls after a 401"
	assert helpers.job(waiting).status == states.COMPLETED
	log_text = (frappe.get_site_path("logs", "dartwing.jobs.log"),)
	with open(log_text[0]) as fh:
		tail = fh.read()[-20000:]
	assert "aborted due to authentication error" in tail and denied in tail and "401" in tail
	del logs


@pytest.mark.parametrize(
	"status,headers,reason",
	[
		(429, {"Retry-After": "120"}, "Retry-After"),
		(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "RESET"}, "X-RateLimit-Reset"),
	],
)
def test_rate_limits_retry_after_the_server_says(org, job_type_factory, http_server, status, headers, reason):
	headers = {k: (str(int(time.time()) + 120) if v == "RESET" else v) for k, v in headers.items()}
	http_server.routes["/limited"] = (status, headers, "slow down", 0)
	caller = job_type_factory(
		handler="demo_http", max_retries=3, backoff_strategy="Fixed", backoff_base_seconds=1
	)
	job = helpers.submit_as(org.user, caller, {"url": http_server.url("/limited")})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	row = helpers.job(job)
	assert row.status == states.RETRYING, reason
	assert timedelta(seconds=100) < row.next_retry_at - now_datetime() < timedelta(seconds=125)


def test_server_errors_retry_and_403_without_rate_limit_aborts(org, job_type_factory, http_server):
	http_server.routes["/boom"] = (503, {}, "down", 0)
	http_server.routes["/forbidden"] = (403, {"X-RateLimit-Remaining": "10"}, "no", 0)
	caller = job_type_factory(
		handler="demo_http", max_retries=1, backoff_strategy="Schedule", backoff_schedule="0"
	)
	boom = helpers.submit_as(org.user, caller, {"url": http_server.url("/boom")})["job_id"]
	forbidden = helpers.submit_as(org.user, caller, {"url": http_server.url("/forbidden")})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(boom).status == states.DEAD_LETTER and helpers.job(boom).attempt == 2
	assert helpers.job(forbidden).status == states.FAILED and helpers.job(forbidden).attempt == 1


def test_a_handler_sleeping_past_its_timeout_is_interrupted_on_time(org, job_type_factory):
	short = job_type_factory(handler="demo_sleep", timeout_seconds=2, max_retries=0)
	job = helpers.submit_as(org.user, short, {"seconds": 30, "steps": 1})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	row = helpers.job(job)
	assert row.status == states.TIMED_OUT
	assert 2 <= row.run_time < 3, row.run_time
	assert helpers.events(job)[-1] == "Timed Out"


def test_cancel_a_running_job_that_checks_and_one_that_never_does(org):
	cooperative = helpers.submit_as(org.user, "demo_sleep", {"seconds": 60, "steps": 120})["job_id"]
	stubborn = helpers.submit_as(org.user, "demo_sleep", {"seconds": 60, "steps": 1, "ignore_cancel": True})[
		"job_id"
	]
	with helpers.Worker(), helpers.Worker():
		for job in (cooperative, stubborn):
			helpers.wait_for_status(job, states.RUNNING)
			time.sleep(0.3)
			requested = time.monotonic()
			assert cancellation.cancel(job, actor=org.user) == states.RUNNING
			frappe.db.commit()
			row = helpers.wait_for_status(job, states.CANCELED, timeout=10)
			assert time.monotonic() - requested < 2, f"{job} took too long to cancel"
			assert row.canceled_by == org.user and row.canceled_at
	assert "Cancel Requested" in helpers.events(stubborn)
	for job in (cooperative, stubborn):
		actors = frappe.get_all("Job Execution Log", filters={"job": job, "event": "Canceled"}, pluck="actor")
		assert actors == [org.user], "the Canceled row names who canceled, not the worker"


def test_only_a_waiting_token_is_removed_after_commit(org):
	"""A drained job's token record goes in one script, unless a worker already started the token."""
	from frappe.utils.background_jobs import get_redis_conn
	from rq.job import Job

	from dartwing.dartwing_core.background_jobs import tokens

	job = helpers.submit_as(org.user, "demo_echo", {"w": 1})["job_id"]
	token = helpers.job(job).rq_job_id
	connection = get_redis_conn()
	connection.hset(Job.key_for(token), "status", "started")
	tokens.remove_token_after_commit(token)
	frappe.db.commit()
	assert Job.exists(token, connection=connection), "a started token was deleted"
	connection.hset(Job.key_for(token), "status", "queued")
	tokens.remove_token_after_commit(token)
	frappe.db.commit()
	assert not Job.exists(token, connection=connection)
	cancellation.cancel(job)
	frappe.db.commit()


def test_cancel_a_queued_job_removes_its_token(org):
	from frappe.utils.background_jobs import get_redis_conn
	from rq.job import Job

	job = helpers.submit_as(org.user, "demo_echo", {"c": 1})["job_id"]
	token = helpers.job(job).rq_job_id
	assert Job.exists(token, connection=get_redis_conn())
	assert cancellation.cancel(job) == states.CANCELED
	frappe.db.commit()
	assert not Job.exists(token, connection=get_redis_conn())
	with pytest.raises(frappe.ValidationError, match="already Canceled"):
		cancellation.cancel(job)


def test_a_job_whose_worker_is_sigkilled_completes_on_another_worker(org, job_type_factory, fast_recovery):
	sturdy = job_type_factory(handler="demo_sleep", max_retries=1, timeout_seconds=120)
	job = helpers.submit_as(org.user, sturdy, {"seconds": 3, "steps": 3})["job_id"]
	first = helpers.Worker()
	helpers.wait_for_status(job, states.RUNNING)
	first.kill()
	# Its heartbeat goes stale (4 s in fast_recovery) while the row still says Running.
	helpers.wait_for(
		lambda: helpers.job(job).heartbeat < now_datetime() - timedelta(seconds=4.5),
		timeout=15,
		message="a stale heartbeat",
	)
	assert helpers.job(job).status == states.RUNNING
	assert reaper.reap()["recovered"] == 1
	assert reaper.reap()["recovered"] == 0, "a second reaper run must not recover it again"
	with helpers.Worker():
		row = helpers.wait_for_status(job, states.COMPLETED, timeout=30)
	assert row.attempt == 2
	assert "Recovered" in helpers.events(job)


def test_jobs_queued_before_a_redis_flush_complete(org):
	jobs = [helpers.submit_as(org.user, "demo_echo", {"f": i})["job_id"] for i in range(3)]
	helpers.redis_flushall()
	assert helpers.run_burst_worker().returncode == 0
	assert {helpers.job(j).status for j in jobs} == {states.QUEUED}
	frappe.db.sql(
		"UPDATE `tabBackground Job` SET queued_at = %s WHERE name IN %s",
		(now_datetime() - timedelta(minutes=1), tuple(jobs)),
	)
	frappe.db.commit()
	assert reaper.reap()["repushed"] == 3
	assert reaper.reap()["repushed"] == 0
	assert helpers.run_burst_worker().returncode == 0
	assert {helpers.job(j).status for j in jobs} == {states.COMPLETED}


def _abandon_token(job: str):
	"""Leave the job's token as a worker SIGKILLed right after popping it would: out of its queue."""
	from rq.job import Job

	token = Job.fetch(helpers.job(job).rq_job_id, connection=get_redis_conn())
	get_queue(token.origin.rsplit(":", 1)[-1]).remove(token)
	frappe.db.sql(
		"UPDATE `tabBackground Job` SET queued_at = %s WHERE name = %s",
		(now_datetime() - timedelta(minutes=5), job),
	)
	frappe.db.commit()
	return token


def test_a_token_popped_by_a_worker_that_died_is_pushed_again(org):
	job = helpers.submit_as(org.user, "demo_echo", {"popped": 1})["job_id"]
	token = _abandon_token(job)
	assert token.get_status(refresh=True) == "queued", "RQ still calls it queued"
	assert reaper.reap()["repushed"] == 1
	assert reaper.reap()["repushed"] == 0
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(job).status == states.COMPLETED


def test_a_token_whose_horse_died_before_claiming_is_pushed_again(org):
	"""RQ still says "started" for a token whose work horse was SIGKILLed before it claimed."""
	from rq.job import JobStatus
	from rq.utils import utcformat

	job = helpers.submit_as(org.user, "demo_echo", {"abandoned": 1})["job_id"]
	token = _abandon_token(job)
	token.set_status(JobStatus.STARTED)
	connection = get_redis_conn()
	recently, long_ago = (
		datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=s) for s in (10, 180)
	)
	connection.hset(token.key, "started_at", utcformat(recently))
	assert reaper.reap()["repushed"] == 0, "a horse that started 10 s ago may still be claiming"
	connection.hset(token.key, "started_at", utcformat(long_ago))
	assert reaper.reap()["repushed"] == 1
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(job).status == states.COMPLETED


def test_reaper_passes_look_at_a_bounded_slice_in_turn_and_everything_after_redis_lost_its_data(org):
	"""A pass looks at ``budget`` Queued jobs and the next goes on where it stopped; once the
	marker kept beside the tokens is gone (Redis lost its data), one pass looks at every job."""
	jobs = [helpers.submit_as(org.user, "demo_echo", {"slice": n})["job_id"] for n in range(6)]
	reaper.repush_lost_queued()  # the tokens are all held: this pass only leaves the marker
	for job in jobs:
		_abandon_token(job)
	others = frappe.db.count("Background Job", {"status": states.QUEUED, "name": ("not in", jobs)})
	passes, repushed = 0, 0
	while repushed < len(jobs) and passes < 20:
		found = reaper.repush_lost_queued(batch_size=2, budget=4)
		assert found <= 4
		repushed += found
		passes += 1
	assert repushed == len(jobs), "every lost token was found"
	assert passes >= (len(jobs) + others) // 4, "no pass looked at more than its budget"
	assert all(helpers.events(job).count("Requeued") == 1 for job in jobs)

	for job in jobs:
		_abandon_token(job)
	get_redis_conn().delete(reaper._token_store_key(reaper.TOKENS_MARKER))
	assert reaper.repush_lost_queued(batch_size=2, budget=1) == len(jobs), "one pass, every job"
	assert helpers.run_burst_worker().returncode == 0
	assert {helpers.job(job).status for job in jobs} == {states.COMPLETED}


def test_pause_and_resume_a_queue(org, job_type_factory):
	on_long = job_type_factory(queue="long")
	before = helpers.submit_as(org.user, on_long, {"p": 1})["job_id"]
	try:
		assert pausing.pause(queue="long")["jobs_moved"] == 1
		frappe.db.commit()
		after = helpers.submit_as(org.user, on_long, {"p": 2})["job_id"]
		assert helpers.run_burst_worker().returncode == 0
		assert {helpers.job(before).status, helpers.job(after).status} == {states.PENDING}
	finally:
		result = pausing.resume(queue="long")
		frappe.db.commit()
	assert result["jobs_moved"] == 2
	assert helpers.run_burst_worker().returncode == 0
	assert {helpers.job(before).status, helpers.job(after).status} == {states.COMPLETED}
