"""The engine's promises at the edges, each with real processes: a worker that lost its job commits
none of its handler's writes, a watchdog that cannot write heartbeats stops and rolls back the
handler in time, hung preconditions hold up no other submit, the next claim after a pause commits
sees it, concurrent manual retries dedup, a handler that blocks SIGALRM still ends at its timeout,
and a transition writes known columns only."""

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import frappe
import pymysql
import pytest
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import (
	cancellation,
	interruption,
	manual_retry,
	pausing,
	reaper,
	settings,
	side_channel,
	states,
)
from dartwing.dartwing_core.background_jobs.api_errors import DuplicateJobError, PreconditionUnavailableError
from dartwing.dartwing_core.background_jobs.settings import SETTINGS_DOCTYPE, clear_engine_cache
from dartwing.dartwing_core.background_jobs.transitions import transition
from dartwing.processes import frappe_cli
from dartwing.tests.integration import helpers
from dartwing.tests.integration.local_http import ScriptedServer


@pytest.fixture
def engine_settings():
	"""Change Background Job Settings for one test; they are put back afterwards."""
	changed = {}

	def apply(**values):
		for key in values:
			changed.setdefault(key, frappe.db.get_single_value(SETTINGS_DOCTYPE, key))
		frappe.db.set_single_value(SETTINGS_DOCTYPE, values)
		clear_engine_cache()
		frappe.db.commit()

	yield apply
	frappe.db.rollback()
	if changed:
		frappe.db.set_single_value(SETTINGS_DOCTYPE, changed)
		clear_engine_cache()
		frappe.db.commit()


def _connection(dirty: bool = False) -> pymysql.Connection:
	"""A database connection of the test's own, outside Frappe; ``dirty`` reads uncommitted rows."""
	connection = pymysql.connect(**side_channel.connection_params())
	if dirty:
		with connection.cursor() as cursor:
			cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
	return connection


def _query(connection: pymysql.Connection, sql: str, args=()) -> list[tuple]:
	with connection.cursor() as cursor:
		cursor.execute(sql, args)
		return list(cursor.fetchall())


def _notes(connection: pymysql.Connection, note: str) -> list[str]:
	"""The ToDos ``demo_sleep`` wrote for ``note``, as ``connection`` sees them."""
	return [
		row[0]
		for row in _query(
			connection,
			"SELECT description FROM `tabToDo` WHERE description LIKE %s ORDER BY creation",
			(f"{note}%",),
		)
	]


def _committed_notes(note: str) -> list[str]:
	connection = _connection()
	try:
		return _notes(connection, note)
	finally:
		connection.close()


def _poll(predicate, timeout: float, message: str):
	"""``helpers.wait_for`` without its rollback, for tests that hold a lock meanwhile."""
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if value := predicate():
			return value
		time.sleep(0.05)
	raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def _lock_job_row(job: str) -> frappe._dict:
	"""Hold the job's row lock in this test's transaction (until its commit or rollback)."""
	return frappe.db.sql(
		"SELECT name, status, attempt, heartbeat FROM `tabBackground Job` WHERE name = %s FOR UPDATE",
		job,
		as_dict=True,
	)[0]


def _waits_to_lock(watcher: pymysql.Connection, job: str) -> bool:
	"""Some connection is waiting to lock the job's row for a transition: its locking read
	(``lock_job``) or its conditional status UPDATE (a worker's outcome, ``known_row``)."""
	return bool(
		_query(
			watcher,
			"""SELECT COUNT(*) FROM information_schema.PROCESSLIST
			WHERE INFO LIKE %s AND (INFO LIKE %s OR INFO LIKE %s) AND ID != CONNECTION_ID()""",
			(f"%{job}%", "%FOR UPDATE%", "%SET `status`%"),
		)[0][0]
	)


def test_a_worker_that_lost_its_job_commits_none_of_its_handlers_writes(
	org, job_type_factory, engine_settings
):
	"""The horse is stopped (SIGSTOP) past the stale limit at the worst moment: its handler wrote a
	row and returned, and it is about to record the outcome (the test holds the job's row lock to
	keep it exactly there). The reaper recovers the job; then the horse goes on (SIGCONT). The
	first run's row never appears, the second run's exactly once."""
	engine_settings(heartbeat_interval_seconds=2, stale_heartbeat_seconds=8)
	sturdy = job_type_factory(handler="demo_sleep", max_retries=1, timeout_seconds=120)
	note = helpers.unique("fenced")
	job = helpers.submit_as(
		org.user, sturdy, {"seconds": 1, "steps": 1, "ignore_cancel": True, "note": note}
	)["job_id"]
	watcher = _connection(dirty=True)
	try:
		with helpers.Worker() as worker:
			_poll(lambda: _notes(watcher, note), 30, "the first run to write its note")
			row = _lock_job_row(job)
			_poll(lambda: _waits_to_lock(watcher, job), 10, "the first run to record its outcome")
			worker.send(signal.SIGSTOP)
			stale = timedelta(seconds=8.5)
			_poll(lambda: now_datetime() - row.heartbeat > stale, 30, "the heartbeat to go stale")
			assert reaper.recover_dead_running() >= 1  # in this transaction; its commit frees the row
			assert helpers.job(job).status == states.QUEUED
			worker.send(signal.SIGCONT)
			finished = helpers.wait_for_status(job, states.COMPLETED, timeout=60)
	finally:
		watcher.close()
	assert finished.attempt == 2
	assert _committed_notes(note) == [f"{note} attempt 2"]
	assert helpers.events(job).count("Recovered") == 1


def test_a_handler_whose_heartbeats_cannot_be_written_is_stopped_and_rolled_back_in_time(
	org, job_type_factory, engine_settings
):
	"""The watchdog's writes hang (the test holds the job's row lock): within half the stale limit
	the handler is stopped and its uncommitted row is gone, before any reaper could recover the
	job; the attempt then ends as a transient failure."""
	engine_settings(heartbeat_interval_seconds=1, stale_heartbeat_seconds=6)
	patient = job_type_factory(handler="demo_sleep", max_retries=0, timeout_seconds=120)
	note = helpers.unique("silenced")
	job = helpers.submit_as(
		org.user, patient, {"seconds": 30, "steps": 1, "ignore_cancel": True, "note": note}
	)["job_id"]
	watcher = _connection(dirty=True)
	try:
		with helpers.Worker():
			_poll(lambda: _notes(watcher, note), 30, "the handler to write its note")
			_lock_job_row(job)
			locked_at = time.monotonic()
			_poll(lambda: not _notes(watcher, note), 6, "the handler's writes to be rolled back")
			rolled_back_after = time.monotonic() - locked_at
			frappe.db.rollback()
			row = helpers.wait_for_status(job, states.DEAD_LETTER, timeout=30)
	finally:
		watcher.close()
	assert rolled_back_after < 6, "the stale limit passed before the handler was stopped"
	assert row.error_type == "HeartbeatLost" and row.run_time < 6
	assert _committed_notes(note) == []


def test_a_handler_that_blocks_sigalrm_ends_at_its_timeout_and_follows_the_retry_policy(
	org, job_type_factory
):
	stubborn = job_type_factory(
		handler="demo_sleep",
		timeout_seconds=2,
		max_retries=1,
		backoff_strategy="Schedule",
		backoff_schedule="0",
	)
	job = helpers.submit_as(
		org.user, stubborn, {"seconds": 60, "steps": 1, "ignore_cancel": True, "mask_alarm": True}
	)["job_id"]
	with helpers.Worker() as worker:
		row = helpers.wait_for_status(job, states.TERMINAL, timeout=40)
		worker_survived = worker.process.poll() is None
	assert row.status == states.TIMED_OUT and row.attempt == 2 and row.error_type == "JobTimeout"
	timed_out = frappe.get_all(
		"Job Execution Log",
		filters={"job": job, "event": "Timed Out"},
		fields=["attempt", "duration", "to_status"],
		order_by="timestamp asc, name asc",
	)
	assert [(r.attempt, r.to_status) for r in timed_out] == [
		(1, states.RETRYING),
		(2, states.TIMED_OUT),
	]
	bound = 2 + interruption.MAX_STOP_GRACE_SECONDS + 1
	assert all(2 <= r.duration < bound for r in timed_out), [r.duration for r in timed_out]
	assert worker_survived, "only the work horses were ended, not the worker"


def _ended(process) -> bool:
	import psutil

	try:
		return process.status() == psutil.STATUS_ZOMBIE
	except psutil.NoSuchProcess:
		return True


def test_a_silent_handler_that_cannot_be_interrupted_loses_its_work_horse_and_its_writes(
	org, job_type_factory, engine_settings
):
	"""Heartbeats cannot be written and the handler blocks SIGALRM: the work horse is ended (its
	connection killed, so the handler's row is rolled back) before the stale limit; the reaper
	then recovers the job as it does any dead worker's."""
	engine_settings(heartbeat_interval_seconds=1, stale_heartbeat_seconds=6)
	unstoppable = job_type_factory(handler="demo_sleep", max_retries=0, timeout_seconds=120)
	note = helpers.unique("unstoppable")
	job = helpers.submit_as(
		org.user,
		unstoppable,
		{"seconds": 60, "steps": 1, "ignore_cancel": True, "mask_alarm": True, "note": note},
	)["job_id"]
	watcher = _connection(dirty=True)
	try:
		with helpers.Worker() as worker:
			_poll(lambda: _notes(watcher, note), 30, "the handler to write its note")
			(horse,) = worker.horses()
			_lock_job_row(job)
			locked_at = time.monotonic()
			_poll(lambda: not _notes(watcher, note), 6, "the handler's writes to be rolled back")
			_poll(lambda: _ended(horse), 6, "the work horse to end")
			ended_after = time.monotonic() - locked_at
			frappe.db.rollback()
			helpers.wait_for(
				lambda: reaper.reap()["recovered"] and helpers.terminal(job), timeout=30, interval=0.5
			)
			worker_survived = worker.process.poll() is None
	finally:
		watcher.close()
	assert ended_after < 6, "the stale limit passed before the work horse was ended"
	assert worker_survived
	row = helpers.job(job)
	assert row.status == states.DEAD_LETTER and row.error_type == "WorkerLost"
	assert _committed_notes(note) == []


def test_a_cancel_ends_a_handler_that_cannot_be_interrupted(org, job_type_factory):
	unstoppable = job_type_factory(handler="demo_sleep", max_retries=0, timeout_seconds=120)
	job = helpers.submit_as(
		org.user, unstoppable, {"seconds": 60, "steps": 1, "ignore_cancel": True, "mask_alarm": True}
	)["job_id"]
	grace = settings.get_settings().cancel_grace_seconds
	with helpers.Worker() as worker:
		helpers.wait_for_status(job, states.RUNNING)
		requested = time.monotonic()
		assert cancellation.cancel(job, actor=org.user) == states.RUNNING
		frappe.db.commit()
		row = helpers.wait_for_status(job, states.CANCELED, timeout=20)
		took = time.monotonic() - requested
		worker_survived = worker.process.poll() is None
	assert took < grace + interruption.MAX_STOP_GRACE_SECONDS + 3, took
	assert worker_survived
	assert row.canceled_by == org.user
	actors = frappe.get_all("Job Execution Log", filters={"job": job, "event": "Canceled"}, pluck="actor")
	assert actors == [org.user]


def test_hung_preconditions_hold_up_no_other_submit(org, job_type_factory):
	with ScriptedServer() as server:
		server.routes["/hang"] = (200, {}, "late", 60)
		server.routes["/check"] = (200, {}, "ok", 0)
		hanging = job_type_factory(precondition="demo_token_check", precondition_timeout_seconds=0.2)
		healthy = job_type_factory(precondition="demo_token_check", precondition_timeout_seconds=2)
		other_org, other_user = helpers.make_org_with_user()
		try:
			slowest = 0.0
			for i in range(100):
				started = time.monotonic()
				with pytest.raises(PreconditionUnavailableError):
					helpers.submit_as(
						org.user, hanging, {"token_check_url": server.url("/hang"), "token": "t", "i": i}
					)
				slowest = max(slowest, time.monotonic() - started)
			assert slowest < 0.2 + 0.5, "a submit waited past its precondition's own timeout"

			started = time.monotonic()
			result = helpers.submit_as(
				other_user,
				healthy,
				{"token_check_url": server.url("/check"), "token": "t"},
				organization=other_org,
			)
			assert result["status"] == states.QUEUED
			assert time.monotonic() - started < 2
		finally:
			helpers.cleanup_org(other_org)


def _bench_execute(method: str, **kwargs) -> str:
	"""``bench --site S execute METHOD`` in a process of its own; its printed answer."""
	command = frappe_cli(frappe.local.site, "execute", method)
	if kwargs:
		command += ["--kwargs", repr(kwargs)]
	result = subprocess.run(command, cwd=helpers.SITES_PATH, capture_output=True, text=True, timeout=120)
	assert result.returncode == 0, result.stderr[-2000:]
	return result.stdout.strip()


def test_a_claim_in_another_process_right_after_a_pause_commits_sees_the_pause(org, job_type_factory):
	on_long = job_type_factory(queue="long")
	job = helpers.submit_as(org.user, on_long, {"c": 1})["job_id"]
	try:
		pausing.pause(queue="long")
		# Before the pause commits, another process reads the engine state from the old rows.
		assert '"long"' not in _bench_execute("dartwing.dartwing_core.background_jobs.settings._engine_state")
		frappe.db.commit()
		# A job queued by someone who read the old state too: the race a pause cannot exclude.
		frappe.db.sql(
			"UPDATE `tabBackground Job` SET status = 'Queued', queued_at = %s WHERE name = %s",
			(now_datetime(), job),
		)
		frappe.db.commit()
		claimed = _bench_execute(
			"dartwing.dartwing_core.background_jobs.claiming.claim",
			queue="long",
			token_for=None,
			token_id=None,
		)
		assert claimed == "", f"a claim took {job} from a paused queue"
		assert helpers.job(job).status == states.QUEUED
	finally:
		pausing.resume(queue="long")
		frappe.db.commit()


def test_the_engine_state_is_cached_for_a_short_while_only():
	settings.paused_queues()
	expires_in = frappe.cache.ttl(frappe.cache.make_key("dartwing:engine_state"))
	assert 0 < expires_in <= settings.STATE_TTL_SECONDS


def _retry_in_own_connection(site: str, job: str, parameters: dict, outcomes: dict, hold=None):
	"""``manual_retry.retry`` in a thread with a connection of its own; ``hold`` = (retried, go):
	set ``retried`` and wait for ``go`` before committing."""
	frappe.init(site=site, sites_path=helpers.SITES_PATH)
	try:
		frappe.connect()
		frappe.set_user("Administrator")
		try:
			manual_retry.retry(job, parameters=parameters)
			if hold:
				hold[0].set()
				hold[1].wait(30)
			frappe.db.commit()
			outcomes[job] = states.QUEUED
		except DuplicateJobError as exc:
			frappe.db.rollback()
			outcomes[job] = exc
	finally:
		frappe.destroy()


def test_rebuilding_the_engine_state_loads_no_list_query_machinery():
	"""A work horse that finds the engine state expired rebuilds it with plain queries:
	``frappe.get_all`` would import ``frappe.boot`` (~90 ms) in the middle of its claim."""
	script = (
		"import sys, frappe\n"
		f"frappe.init(site={frappe.local.site!r}, sites_path='.')\n"
		"frappe.connect()\n"
		"from dartwing.dartwing_core.background_jobs import settings\n"
		"frappe.cache.delete_value(settings._CACHE_KEY)\n"
		"state = settings.engine_state()\n"
		"print('frappe.boot' in sys.modules, state.settings.fair_share)\n"
	)
	process = subprocess.run(
		[sys.executable, "-c", script], cwd=helpers.SITES_PATH, capture_output=True, text=True, timeout=120
	)
	assert process.returncode == 0, process.stderr[-2000:]
	imported_boot, fair_share = process.stdout.split()[-2:]
	assert imported_boot == "False" and fair_share in ("0", "1")


def test_two_concurrent_retries_with_the_same_edits_leave_one_active_job(org, job_type_factory):
	deduped = job_type_factory(handler="demo_fail", max_retries=0, dedup_window_seconds=3600)
	first = helpers.submit_as(org.user, deduped, {"error": "permanent", "n": 1})["job_id"]
	second = helpers.submit_as(org.user, deduped, {"error": "permanent", "n": 2})["job_id"]
	assert helpers.run_burst_worker().returncode == 0
	assert {helpers.job(first).status, helpers.job(second).status} == {states.FAILED}

	edited, outcomes = {"fail_times": 0, "n": 0}, {}
	retried, go = threading.Event(), threading.Event()
	site = frappe.local.site
	a = threading.Thread(target=_retry_in_own_connection, args=(site, first, edited, outcomes, (retried, go)))
	b = threading.Thread(target=_retry_in_own_connection, args=(site, second, edited, outcomes))
	a.start()
	try:
		assert retried.wait(30), "the first retry did not get through"
		b.start()
		# The second retry now waits for the first one's transaction.
		helpers.wait_for(
			lambda: frappe.db.sql(
				"""SELECT COUNT(*) FROM information_schema.PROCESSLIST
				WHERE INFO LIKE 'UPDATE %%dedup_key%%' AND ID != CONNECTION_ID()"""
			)[0][0],
			timeout=10,
			interval=0.02,
			message="the second retry to wait for the first",
		)
	finally:
		go.set()
		a.join(30)
		if b.ident:
			b.join(30)
	assert outcomes[first] == states.QUEUED
	assert isinstance(outcomes[second], DuplicateJobError), outcomes[second]
	frappe.db.rollback()
	active = frappe.db.count("Background Job", {"job_type": deduped, "status": ("in", list(states.ACTIVE))})
	assert active == 1
	assert helpers.job(second).status == states.FAILED


def test_a_transition_writes_known_columns_only(org):
	job = helpers.submit_as(org.user, "demo_echo", {"columns": 1})["job_id"]
	with pytest.raises(ValueError, match="no_such_column"):
		transition(job, states.CANCELED, expect={states.QUEUED}, values={"no_such_column": 1})
	with pytest.raises(ValueError, match="status"):
		transition(job, states.CANCELED, expect={states.QUEUED}, values={"status": states.COMPLETED})
	frappe.db.rollback()
	assert helpers.job(job).status == states.QUEUED
	assert helpers.events(job) == ["Submitted", "Queued"]
