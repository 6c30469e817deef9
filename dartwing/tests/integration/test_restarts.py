"""Restarts with real workers and real signals, as supervisor, Docker and Kubernetes stop them.

A worker told to stop (SIGTERM to its main process) claims nothing more, lets a short job finish,
hands a long one back after its shutdown grace without counting an attempt and exits within the
grace + 5 s, whatever the handler does; SIGTERM to its work horse too hands the job back at once.
A worker killed during its grace costs its job seconds, not an attempt; a job that keeps killing
its worker is recovered free three times, then dead-lettered; retries survive a restart; another
worker does not notice; the upkeep runner hands its lease over when told to stop."""

import json
import os
import signal
import time
from datetime import timedelta

import frappe
import pytest
from frappe.utils.background_jobs import get_redis_conn

from dartwing.dartwing_core.background_jobs import job_views, metrics, reaper, states, upkeep
from dartwing.tests.integration import helpers
from dartwing.tests.integration.test_edges import _committed_notes, _ended, engine_settings
from dartwing.tests.integration.test_failures import fast_recovery
from dartwing.tests.integration.test_upkeep import UpkeepRunner

# The bound: a worker exits within its shutdown grace + 5 s.
EXIT_MARGIN = 5


def _terminate(worker: helpers.Worker) -> float:
	"""SIGTERM to the worker's main process only, as supervisor, Docker and Kubernetes send it."""
	os.kill(worker.process.pid, signal.SIGTERM)
	return time.monotonic()


def _exited_after(worker: helpers.Worker, since: float, timeout: float) -> float:
	worker.process.wait(timeout=timeout)
	return time.monotonic() - since


def _checkpoint_step(job: str) -> int:
	return json.loads(helpers.job(job).checkpoint or "{}").get("step", 0)


def _log(job: str, event: str) -> list:
	frappe.db.rollback()
	return frappe.get_all(
		"Job Execution Log",
		filters={"job": job, "event": event},
		fields=["attempt", "worker", "message", "to_status"],
		order_by="timestamp asc, name asc",
	)


def _kill_its_worker(job: str, run: int) -> frappe._dict:
	"""A worker runs ``job`` (its ``run``-th run) and is SIGKILLed with its work horse; the reaper
	recovers the job once its heartbeat is stale."""
	with helpers.Worker() as worker:
		helpers.wait_for(
			lambda: helpers.job(job).status == states.RUNNING and helpers.job(job).attempt == run,
			timeout=60,
			message=f"run {run}",
		)
		worker.kill()
	helpers.wait_for(reaper.recover_dead_running, timeout=30, interval=0.5, message="the recovery")
	return helpers.job(job)


def test_sigterm_during_a_short_job_lets_it_finish_then_the_worker_exits(org, job_type_factory):
	short = job_type_factory(handler="demo_sleep", max_retries=0)
	job = helpers.submit_as(org.user, short, {"seconds": 3, "steps": 3})["job_id"]
	with helpers.Worker() as worker:
		helpers.wait_for_status(job, states.RUNNING)
		signalled = _terminate(worker)
		exited_after = _exited_after(worker, signalled, timeout=20)
	row = helpers.job(job)
	assert row.status == states.COMPLETED and row.attempt == 1 and row.recoveries == 0
	assert "Interrupted" not in helpers.events(job)
	assert exited_after < 3 + EXIT_MARGIN, exited_after


@pytest.mark.parametrize("handler", ["cooperative", "stubborn"])
def test_sigterm_during_a_long_job_hands_it_back_after_the_grace_and_the_worker_exits_in_time(
	handler,
	org,
	job_type_factory,
	engine_settings,  # noqa: F811
):
	"""The cooperative handler checkpoints every second and resumes from there on the next worker;
	the stubborn one never checks and blocks the engine's SIGALRM, so it is cut off. Either way
	the interrupted run's own writes are rolled back."""
	grace = 3
	engine_settings(shutdown_grace_seconds=grace)
	long_type = job_type_factory(handler="demo_sleep", max_retries=0, timeout_seconds=600)
	note = helpers.unique("restarted")
	if handler == "cooperative":
		parameters = {"seconds": 16, "steps": 16, "checkpoint": True, "note": note}
	else:
		parameters = {"seconds": 300, "steps": 1, "ignore_cancel": True, "mask_alarm": True, "note": note}
	job = helpers.submit_as(org.user, long_type, parameters)["job_id"]
	with helpers.Worker() as worker:
		if handler == "cooperative":
			helpers.wait_for(lambda: _checkpoint_step(job) >= 2, timeout=60, message="two steps done")
		else:
			helpers.wait_for_status(job, states.RUNNING)
			time.sleep(1)
		signalled = _terminate(worker)
		exited_after = _exited_after(worker, signalled, timeout=grace + EXIT_MARGIN + 10)
	assert grace <= exited_after < grace + EXIT_MARGIN, exited_after
	row = helpers.job(job)
	assert row.status == states.QUEUED
	assert (row.attempt, row.recoveries, row.recoveries_in_a_row, row.worker_stopping) == (1, 1, 0, 0)
	assert _committed_notes(note) == [], "the interrupted run's writes were committed"
	(interrupted,) = _log(job, "Interrupted")
	assert interrupted.attempt == 1 and interrupted.worker == row.worker
	assert "told to stop" in interrupted.message
	assert helpers.events(job)[-3:] == ["Started", "Interrupted", "Requeued"]
	assert job_views.status_view(job_views.get_readable_job(job))["recoveries"] == 1
	(stats,) = (entry for entry in metrics.queue_stats()["queues"] if entry["job_type"] == long_type)
	assert (stats["handed_back"], stats["recoveries"], stats["waiting"]) == (1, 1, 1)
	if handler == "stubborn":
		return

	kept = _checkpoint_step(job)
	assert kept >= 2, "the checkpoint was not kept"
	with helpers.Worker():
		row = helpers.wait_for_status(job, states.COMPLETED, timeout=60)
	assert json.loads(row.result)["resumed_from"] == kept
	assert (row.attempt, row.recoveries) == (2, 1)
	assert _committed_notes(note) == [f"{note} attempt 2"]


def test_a_job_type_may_ask_for_a_longer_grace_of_its_own(
	org,
	job_type_factory,
	engine_settings,  # noqa: F811
):
	engine_settings(shutdown_grace_seconds=1)
	patient = job_type_factory(
		handler="demo_sleep", max_retries=0, timeout_seconds=600, shutdown_grace_seconds=6
	)
	job = helpers.submit_as(org.user, patient, {"seconds": 300, "steps": 300})["job_id"]
	with helpers.Worker() as worker:
		helpers.wait_for(lambda: helpers.job(job).progress_percent > 0, message="the job's first step")
		signalled = _terminate(worker)
		exited_after = _exited_after(worker, signalled, timeout=6 + EXIT_MARGIN + 10)
	assert 6 <= exited_after < 6 + EXIT_MARGIN, exited_after
	(interrupted,) = _log(job, "Interrupted")
	assert "grace of 6" in interrupted.message


def test_sigterm_to_the_work_horse_too_hands_the_job_back_at_once(org, job_type_factory):
	"""A whole process group signalled (honcho, docker kill): no grace is waited for."""
	long_type = job_type_factory(handler="demo_sleep", max_retries=0, timeout_seconds=600)
	job = helpers.submit_as(org.user, long_type, {"seconds": 300, "steps": 300})["job_id"]
	with helpers.Worker() as worker:
		helpers.wait_for(lambda: helpers.job(job).progress_percent > 0, message="the job's first step")
		signalled = time.monotonic()
		worker.send(signal.SIGTERM)
		exited_after = _exited_after(worker, signalled, timeout=30)
	assert exited_after < EXIT_MARGIN, exited_after
	row = helpers.job(job)
	assert row.status == states.QUEUED and (row.attempt, row.recoveries) == (1, 1)
	(interrupted,) = _log(job, "Interrupted")
	assert "SIGTERM" in interrupted.message


def test_a_work_horse_whose_worker_was_killed_hands_its_job_back_at_once(org, job_type_factory):
	"""SIGKILL to the worker's process group only (supervisor's killasgroup) leaves the work horse,
	which RQ starts in a session of its own: it hands the job back and ends."""
	long_type = job_type_factory(handler="demo_sleep", max_retries=0, timeout_seconds=600)
	job = helpers.submit_as(org.user, long_type, {"seconds": 300, "steps": 300})["job_id"]
	with helpers.Worker() as worker:
		helpers.wait_for(lambda: helpers.job(job).progress_percent > 0, message="the job's first step")
		(horse,) = worker.horses()
		os.killpg(worker.process.pid, signal.SIGKILL)
		killed = time.monotonic()
		helpers.wait_for(lambda: _ended(horse), timeout=30, message="the work horse to end")
		horse_ended_after = time.monotonic() - killed
	assert horse_ended_after < EXIT_MARGIN, horse_ended_after
	row = helpers.job(job)
	assert row.status == states.QUEUED and (row.attempt, row.recoveries) == (1, 1)
	(interrupted,) = _log(job, "Interrupted")
	assert "gone" in interrupted.message


def test_a_worker_killed_during_its_grace_costs_its_job_seconds_not_an_attempt(org, job_type_factory):
	"""SIGTERM to the worker, SIGKILL to the worker and its work horse 5 s later (supervisor's
	stopwaitsecs, Docker's grace): the job is back in Queued within 10 s of the kill."""
	patient = job_type_factory(handler="demo_sleep", max_retries=0, timeout_seconds=600)
	job = helpers.submit_as(org.user, patient, {"seconds": 25, "steps": 25})["job_id"]
	with UpkeepRunner():
		with helpers.Worker() as worker:
			helpers.wait_for_status(job, states.RUNNING)
			signalled = _terminate(worker)
			helpers.wait_for(lambda: helpers.job(job).worker_stopping, timeout=5, message="the stop mark")
			time.sleep(max(5 - (time.monotonic() - signalled), 0))
			assert helpers.job(job).status == states.RUNNING, "the job did not get its grace"
			worker.send(signal.SIGKILL)
			killed = time.monotonic()
			helpers.wait_for(lambda: helpers.job(job).status == states.QUEUED, timeout=10, message="Queued")
			requeued_after = time.monotonic() - killed
	row = helpers.job(job)
	assert (row.attempt, row.recoveries, row.recoveries_in_a_row) == (1, 1, 0)
	assert requeued_after < 10, requeued_after
	(recovered,) = _log(job, "Recovered")
	assert "told to stop" in recovered.message and recovered.to_status == states.RETRYING


def test_a_job_that_keeps_killing_its_worker_is_recovered_free_three_times_then_dead_lettered(
	org,
	job_type_factory,
	fast_recovery,  # noqa: F811
):
	deadly = job_type_factory(handler="demo_sleep", max_retries=0, timeout_seconds=600)
	job = helpers.submit_as(org.user, deadly, {"seconds": 300, "steps": 300})["job_id"]
	for death in range(1, 5):
		row = _kill_its_worker(job, death)
		if death <= 3:
			assert row.status == states.QUEUED, f"death {death}"
			assert (row.recoveries, row.recoveries_in_a_row) == (death, death)
	assert row.status == states.DEAD_LETTER and row.recoveries == 3
	assert "killed its worker 4 times in a row" in row.error_message
	assert [entry.to_status for entry in _log(job, "Recovered")] == [states.RETRYING] * 3 + [
		states.DEAD_LETTER
	]


def test_a_job_types_own_max_recoveries_applies(
	org,
	job_type_factory,
	fast_recovery,  # noqa: F811
):
	fragile = job_type_factory(handler="demo_sleep", max_retries=3, timeout_seconds=600, max_recoveries=1)
	job = helpers.submit_as(org.user, fragile, {"seconds": 300, "steps": 300})["job_id"]
	for death in (1, 2):
		row = _kill_its_worker(job, death)
	assert row.status == states.DEAD_LETTER, "its retries do not extend the poison-pill guard"
	assert "killed its worker 2 times in a row (max recoveries 1)" in row.error_message


def test_a_stopping_worker_claims_nothing_new_from_a_queue_of_short_jobs(org, job_type_factory):
	quick = job_type_factory(handler="demo_sleep", max_retries=0)
	jobs = [
		helpers.submit_as(org.user, quick, {"seconds": 1, "steps": 1, "n": n})["job_id"] for n in range(30)
	]
	with helpers.Worker() as worker:
		helpers.wait_for(
			lambda: (
				frappe.db.count("Background Job", {"name": ("in", jobs), "status": states.COMPLETED}) >= 2
			),
			timeout=60,
			message="two jobs done",
		)
		signalled_at = frappe.utils.now_datetime()
		signalled = _terminate(worker)
		exited_after = _exited_after(worker, signalled, timeout=30)
	frappe.db.rollback()
	rows = frappe.get_all(
		"Background Job", filters={"name": ("in", jobs)}, fields=["name", "status", "started_at", "attempt"]
	)
	# The one job under way finishes (1 s); none starts after the stop reached the worker.
	late = [r.name for r in rows if r.started_at and r.started_at > signalled_at + timedelta(seconds=0.25)]
	assert late == [], "claimed after the stop"
	assert {r.status for r in rows} == {states.COMPLETED, states.QUEUED}
	assert all(r.attempt == 0 for r in rows if r.status == states.QUEUED)
	assert exited_after < 1 + EXIT_MARGIN, exited_after


def test_a_job_with_retries_keeps_all_of_them_after_a_restart(
	org,
	job_type_factory,
	engine_settings,  # noqa: F811
):
	"""Interrupted once by a restart, it still fails twice and succeeds on its third charged attempt."""
	engine_settings(shutdown_grace_seconds=1)
	flaky = job_type_factory(
		handler="demo_fail", max_retries=2, backoff_strategy="Schedule", backoff_schedule="0"
	)
	job = helpers.submit_as(org.user, flaky, {"fail_times": 2, "seconds": 3})["job_id"]
	with helpers.Worker() as first:
		helpers.wait_for_status(job, states.RUNNING)
		_exited_after(first, _terminate(first), timeout=1 + EXIT_MARGIN + 10)
	assert helpers.job(job).status == states.QUEUED
	with helpers.Worker():
		row = helpers.wait_for_status(job, states.TERMINAL, timeout=90)
	assert row.status == states.COMPLETED, row.error_message
	assert (row.attempt, row.recoveries) == (4, 1)
	assert json.loads(row.result) == {"succeeded_on_attempt": 4}
	events = helpers.events(job)
	assert (events.count("Interrupted"), events.count("Retry Scheduled")) == (1, 2)


def test_two_workers_one_restarted_the_other_unaffected(
	org,
	job_type_factory,
	engine_settings,  # noqa: F811
):
	engine_settings(shutdown_grace_seconds=2)
	on_short = job_type_factory(handler="demo_sleep", queue="short", max_retries=0, timeout_seconds=600)
	on_long = job_type_factory(handler="demo_sleep", queue="long", max_retries=0)
	restarted_job = helpers.submit_as(org.user, on_short, {"seconds": 300, "steps": 300})["job_id"]
	steady_job = helpers.submit_as(org.user, on_long, {"seconds": 8, "steps": 8})["job_id"]
	with helpers.Worker(queues=("short",)) as restarted, helpers.Worker(queues=("long",)) as steady:
		for job in (restarted_job, steady_job):
			helpers.wait_for_status(job, states.RUNNING)
		signalled = _terminate(restarted)
		exited_after = _exited_after(restarted, signalled, timeout=2 + EXIT_MARGIN + 10)
		assert not helpers.job(steady_job).worker_stopping
		steady_row = helpers.wait_for_status(steady_job, states.TERMINAL, timeout=30)
		assert steady.process.poll() is None, "the other worker stopped too"
		later = helpers.submit_as(org.user, on_long, {"seconds": 0.2, "steps": 1})["job_id"]
		assert helpers.wait_for_status(later, states.TERMINAL, timeout=30).status == states.COMPLETED
	assert exited_after < 2 + EXIT_MARGIN
	assert steady_row.status == states.COMPLETED and steady_row.recoveries == 0
	assert "Interrupted" not in helpers.events(steady_job)
	row = helpers.job(restarted_job)
	assert row.status == states.QUEUED and row.recoveries == 1


def _lease_holder() -> str | None:
	holder = get_redis_conn().get(upkeep.site_key(upkeep.LEASE_KEY))
	return holder.decode() if holder else None


def test_the_upkeep_runner_hands_its_lease_over_when_told_to_stop():
	with UpkeepRunner() as first, UpkeepRunner(standby=True) as second:
		assert f":{first.process.pid}:" in (_lease_holder() or "")
		signalled = time.monotonic()
		os.killpg(first.process.pid, signal.SIGTERM)
		first.process.wait(timeout=30)
		exited_after = time.monotonic() - signalled
		holder = _lease_holder()
		# Its next pass, not the lease's expiry (LEASE_SECONDS), hands the work over.
		helpers.wait_for(second.passed, timeout=3, message="the standby runner to take over")
	assert exited_after < 2, exited_after
	assert holder is None or f":{first.process.pid}:" not in holder, "the lease was not given up"
