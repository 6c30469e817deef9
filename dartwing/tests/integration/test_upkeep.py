"""The upkeep runner as a real process (``bench dartwing upkeep``): due retries, ``run_at`` jobs and
recovery of SIGKILLed workers go on with Frappe's scheduler disabled or skipping the engine's events,
and while the user queue's only worker is busy; its liveness shows in Prometheus, the queue stats
(over HTTP), the workspace banner's API and ``bench dartwing stats``."""

import json
import os
import re
import signal
import subprocess
import time
from datetime import timedelta

import frappe
import pytest
from frappe.utils import now_datetime
from frappe.utils.background_jobs import create_job_id, get_redis_conn
from prometheus_client.parser import text_string_to_metric_families

from dartwing.dartwing_core.background_jobs import clock, metrics, states, upkeep
from dartwing.processes import frappe_cli
from dartwing.tests.integration import helpers
from dartwing.tests.integration.test_failures import fast_recovery

ENGINE_EVENT = "dartwing.dartwing_core.background_jobs.upkeep.scheduler_fallback"
QUICK_RETRY = {
	"handler": "demo_fail",
	"max_retries": 1,
	"backoff_strategy": "Schedule",
	"backoff_schedule": "2",
}


def _runner_pid() -> int | None:
	"""The process id in the last pass's runner id (host:pid:suffix)."""
	seen = upkeep.last_pass()
	parts = seen["runner"].rsplit(":", 2) if seen else []
	return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


class UpkeepRunner:
	"""``bench dartwing upkeep --only SITE`` as a child process; ready once it has made a pass, or
	(``standby``: another runner holds the site's lease) once it serves the site."""

	def __init__(self, standby: bool = False):
		if not standby:
			# A runner killed by an earlier test may still hold the site's lease for a few seconds.
			get_redis_conn().delete(upkeep.site_key(upkeep.LEASE_KEY))
		site = frappe.local.site
		log_name = "dartwing-test-upkeep-standby.log" if standby else "dartwing-test-upkeep.log"
		self.log_path = os.path.join(helpers.SITES_PATH, "..", "logs", log_name)
		self.log = open(self.log_path, "w" if standby else "a")
		self.process = subprocess.Popen(
			frappe_cli(site, "dartwing", "upkeep", "--only", site),
			cwd=helpers.SITES_PATH,
			stdout=self.log,
			stderr=subprocess.STDOUT,
			start_new_session=True,
		)
		try:
			if standby:
				helpers.wait_for(self.serving, timeout=60, message="the standby runner to serve the site")
			else:
				helpers.wait_for(self.passed, timeout=60, message="the upkeep runner's first pass")
		except BaseException:
			self.__exit__()
			raise

	def passed(self) -> bool:
		return _runner_pid() == self.process.pid

	def serving(self) -> bool:
		with open(self.log_path) as log:
			return f"serving {frappe.local.site}" in log.read()

	def kill(self, sig=signal.SIGKILL):
		if self.process.poll() is None:
			os.killpg(self.process.pid, sig)
		self.process.wait(timeout=30)

	def __enter__(self):
		return self

	def __exit__(self, *exc):
		self.kill()
		self.log.close()


@pytest.fixture
def scheduler_disabled():
	from frappe.utils.scheduler import disable_scheduler, enable_scheduler

	was_enabled = frappe.db.get_single_value("System Settings", "enable_scheduler")
	disable_scheduler()
	frappe.db.commit()
	yield
	if was_enabled:
		enable_scheduler()
		frappe.db.commit()


def _scheduled_job_type(method: str):
	return frappe.get_doc("Scheduled Job Type", {"method": method})


@pytest.fixture
def engine_event_hours_ahead():
	"""Every Scheduled Job Type last ran 'in five hours', as after the site's zone moved west."""
	saved = frappe.db.sql("SELECT name, last_execution FROM `tabScheduled Job Type`")
	frappe.db.sql(
		"UPDATE `tabScheduled Job Type` SET last_execution = %s", now_datetime() + timedelta(hours=5)
	)
	frappe.db.commit()
	yield lambda: not _scheduled_job_type(ENGINE_EVENT).is_event_due()
	for name, last_execution in saved:
		frappe.db.sql(
			"UPDATE `tabScheduled Job Type` SET last_execution = %s WHERE name = %s", (last_execution, name)
		)
	frappe.db.commit()


@pytest.fixture
def stale_started_engine_entry():
	"""RQ holds a "started" run of the engine's scheduled event that no worker runs any more."""
	from rq.job import Job, JobStatus

	entry = Job.create(
		"frappe.ping",
		id=create_job_id(f"scheduled_job::{ENGINE_EVENT}"),
		connection=get_redis_conn(),
		origin="default",
	)
	entry.set_status(JobStatus.STARTED)
	entry.save()
	yield lambda: _scheduled_job_type(ENGINE_EVENT).is_job_in_queue()
	entry.delete()


def test_a_due_retry_and_a_due_run_at_job_start_with_frappes_scheduler_off(
	org, job_type_factory, scheduler_disabled
):
	assert not upkeep.scheduler_state()["active"]
	flaky = job_type_factory(**QUICK_RETRY)
	with helpers.Worker(), UpkeepRunner():
		retried = helpers.submit_as(org.user, flaky, {"fail_times": 1})["job_id"]
		later = helpers.submit_as(
			org.user, "demo_echo", {"later": 1}, run_at=clock.site_now() + timedelta(seconds=3)
		)["job_id"]
		assert helpers.job(later).status == states.PENDING
		row = helpers.wait_for_status(retried, states.COMPLETED, timeout=30)
		assert row.attempt == 2 and "Retry Scheduled" in helpers.events(retried)
		row = helpers.wait_for_status(later, states.COMPLETED, timeout=30)
	assert row.started_at >= row.run_at


def test_upkeep_moves_a_due_retry_while_the_queues_only_worker_is_busy(org, job_type_factory):
	flaky = job_type_factory(**QUICK_RETRY)
	retried = helpers.submit_as(org.user, flaky, {"fail_times": 1})["job_id"]
	assert helpers.run_burst_worker(queues=("default",)).returncode == 0
	assert helpers.job(retried).status == states.RETRYING
	blocker = helpers.submit_as(org.user, "demo_sleep", {"seconds": 60, "steps": 60})["job_id"]
	backlog = [helpers.submit_as(org.user, flaky, {"fail_times": 0, "n": n})["job_id"] for n in range(5)]
	with helpers.Worker(queues=("default",)):
		helpers.wait_for_status(blocker, states.RUNNING)
		with UpkeepRunner():
			helpers.wait_for_status(retried, states.QUEUED, timeout=15)
			assert helpers.job(blocker).status == states.RUNNING
			assert {helpers.job(job).status for job in backlog} == {states.QUEUED}


@pytest.mark.parametrize("stall", ["engine_event_hours_ahead", "stale_started_engine_entry"])
def test_recovery_and_retries_go_on_while_frappes_scheduler_skips_the_engines_events(
	stall,
	request,
	org,
	job_type_factory,
	fast_recovery,  # noqa: F811
):
	skips = request.getfixturevalue(stall)
	assert skips(), "Frappe's scheduler would run the engine's event"
	sturdy = job_type_factory(handler="demo_sleep", max_retries=1, timeout_seconds=120)
	flaky = job_type_factory(**QUICK_RETRY)
	job = helpers.submit_as(org.user, sturdy, {"seconds": 3, "steps": 3})["job_id"]
	with UpkeepRunner():
		with helpers.Worker() as first:
			helpers.wait_for_status(job, states.RUNNING)
			first.kill()
		retried = helpers.submit_as(org.user, flaky, {"fail_times": 1})["job_id"]
		with helpers.Worker():
			row = helpers.wait_for_status(job, states.COMPLETED, timeout=60)
			assert row.attempt == 2 and "Recovered" in helpers.events(job)
			assert helpers.wait_for_status(retried, states.COMPLETED, timeout=30).attempt == 2


def _gauges() -> dict[str, float]:
	text = metrics.prometheus_text().decode()
	return {
		family.name: family.samples[0].value
		for family in text_string_to_metric_families(text)
		if family.name.startswith(("dartwing_upkeep", "dartwing_scheduler")) and family.samples
	}


def test_the_upkeeps_age_and_a_disabled_scheduler_show_in_prometheus_stats_and_the_banner_api(
	live, scheduler_disabled
):
	with UpkeepRunner() as runner:
		gauges = _gauges()
		assert 0 <= gauges["dartwing_upkeep_last_pass_age_seconds"] < 2
		assert gauges["dartwing_upkeep_alive"] == 1 and gauges["dartwing_scheduler_active"] == 0
		runner.kill()
	helpers.wait_for(
		lambda: upkeep.liveness()["upkeep_last_pass_age_seconds"] >= 3, timeout=10, message="age"
	)
	assert _gauges()["dartwing_upkeep_last_pass_age_seconds"] >= 3

	# A runner that stopped a minute ago.
	get_redis_conn().set(
		upkeep.site_key(upkeep.LIVENESS_KEY),
		json.dumps({"at": time.time() - 60, "runner": "gone:1:x", "took": 0.01}),
	)
	gauges = _gauges()
	assert gauges["dartwing_upkeep_alive"] == 0 and gauges["dartwing_upkeep_last_pass_age_seconds"] >= 60

	manager = helpers.make_user(roles=("Background Job User", "Background Job Manager"))
	member = helpers.make_user()
	try:
		stats = live.call(live.session(manager), "GET", "get_queue_stats")
		assert stats.status_code == 200, stats.text[:300]
		state = stats.json()["message"]["upkeep"]
		assert state["upkeep_alive"] is False and state["upkeep_last_pass_age_seconds"] >= 60
		assert state["scheduler_active"] is False
		assert any("last ran" in w for w in state["warnings"]) and any(
			"scheduler is off" in w for w in state["warnings"]
		)

		banner_api = f"{live.url}/api/method/dartwing.dartwing_core.api.desk.get_upkeep_status"
		answer = live.session(manager).get(banner_api, timeout=30)
		assert answer.status_code == 200
		seconds = re.compile(r"\d+ s ago")
		assert [seconds.sub("N s ago", w) for w in answer.json()["message"]["warnings"]] == [
			seconds.sub("N s ago", w) for w in state["warnings"]
		]
		assert live.session(member).get(banner_api, timeout=30).status_code == 403
	finally:
		for user in (manager, member):
			frappe.delete_doc("User", user, ignore_permissions=True, force=True)
		frappe.db.commit()

	cli = subprocess.run(
		frappe_cli(frappe.local.site, "dartwing", "stats"),
		cwd=helpers.SITES_PATH,
		capture_output=True,
		text=True,
		timeout=120,
	)
	assert cli.returncode == 0, cli.stderr[-2000:]
	assert "(NOT RUNNING)" in cli.stdout and "scheduler: OFF" in cli.stdout
	assert "WARNING: Dartwing upkeep last ran" in cli.stdout


def test_a_second_runner_stands_by_and_takes_over_when_the_first_is_killed(org, job_type_factory):
	flaky = job_type_factory(**QUICK_RETRY)
	with UpkeepRunner() as first:
		second = subprocess.Popen(
			frappe_cli(frappe.local.site, "dartwing", "upkeep", "--only", frappe.local.site),
			cwd=helpers.SITES_PATH,
			stdout=first.log,
			stderr=subprocess.STDOUT,
			start_new_session=True,
		)
		try:
			# While the first holds the lease, every pass is the first's.
			deadline = time.monotonic() + 5
			while time.monotonic() < deadline:
				assert _runner_pid() == first.process.pid
				time.sleep(0.2)
			first.kill()
			helpers.wait_for(
				lambda: _runner_pid() == second.pid,
				timeout=upkeep.LEASE_SECONDS + 10,
				message="the second runner to take over",
			)
			retried = helpers.submit_as(org.user, flaky, {"fail_times": 1})["job_id"]
			with helpers.Worker():
				assert helpers.wait_for_status(retried, states.COMPLETED, timeout=30).attempt == 2
		finally:
			os.killpg(second.pid, signal.SIGKILL)
			second.wait(timeout=30)


def test_passes_racing_on_the_same_due_retries_queue_each_job_once(org, job_type_factory):
	"""Without the lease (several runners, or a runner and the scheduler's fallback), the
	conditional moves alone keep each due job to one requeue and one token."""
	import threading

	from frappe.utils.background_jobs import get_queue

	from dartwing.dartwing_core.background_jobs import retry_queue

	flaky = job_type_factory(**QUICK_RETRY)
	jobs = [helpers.submit_as(org.user, flaky, {"fail_times": 1, "n": n})["job_id"] for n in range(20)]
	assert helpers.run_burst_worker(queues=("default",)).returncode == 0
	assert {helpers.job(job).status for job in jobs} == {states.RETRYING}
	helpers.wait_for(
		lambda: frappe.db.count(
			"Background Job", {"name": ("in", jobs), "next_retry_utc": (">", clock.utc_now())}
		)
		== 0,
		timeout=10,
		message="the retries to come due",
	)
	site, sites_path = frappe.local.site, frappe.local.sites_path
	barrier, counts, errors = threading.Barrier(4), [], []

	def one_pass():
		frappe.init(site=site, sites_path=sites_path)
		try:
			frappe.connect()
			barrier.wait(timeout=30)
			counts.append(retry_queue.requeue_due_retries())
		except Exception as exc:
			errors.append(exc)
		finally:
			frappe.destroy()

	threads = [threading.Thread(target=one_pass) for _ in range(4)]
	for thread in threads:
		thread.start()
	for thread in threads:
		thread.join(timeout=60)
	assert not errors, errors
	assert sum(counts) == len(jobs), counts
	for job in jobs:
		assert helpers.job(job).status == states.QUEUED
		assert helpers.events(job).count("Requeued") == 1
	waiting = {token.kwargs["kwargs"].get("token_for") for token in get_queue("default").get_jobs()}
	assert set(jobs) <= waiting and len(get_queue("default").get_jobs()) == len(jobs)


def test_one_tick_queues_due_retries_of_several_queues_in_bulk_and_leaves_a_held_one_for_later(
	org, job_type_factory
):
	"""The retry tick moves a batch in one statement: every due job once, one Requeued log row and
	one token each, in its own queue; a job another transaction holds is skipped, not waited for."""
	import threading

	from frappe.utils.background_jobs import get_queue

	from dartwing.dartwing_core.background_jobs import retry_queue

	on_default = job_type_factory(**QUICK_RETRY)
	on_long = job_type_factory(**{**QUICK_RETRY, "queue": "long"})
	jobs = {
		helpers.submit_as(org.user, job_type, {"fail_times": 1, "n": n})["job_id"]: queue
		for n in range(12)
		for job_type, queue in ((on_default, "default"), (on_long, "long"))
	}
	assert helpers.run_burst_worker(queues=("default", "long")).returncode == 0
	assert {helpers.job(job).status for job in jobs} == {states.RETRYING}
	helpers.wait_for(
		lambda: frappe.db.count(
			"Background Job", {"name": ("in", list(jobs)), "next_retry_utc": (">", clock.utc_now())}
		)
		== 0,
		timeout=10,
		message="the retries to come due",
	)
	held = next(iter(jobs))
	site, sites_path = frappe.local.site, frappe.local.sites_path
	locked, release = threading.Event(), threading.Event()

	def hold_one_row():
		frappe.init(site=site, sites_path=sites_path)
		try:
			frappe.connect()
			frappe.db.sql("SELECT name FROM `tabBackground Job` WHERE name = %s FOR UPDATE", held)
			locked.set()
			release.wait(timeout=60)
			frappe.db.rollback()
		finally:
			frappe.destroy()

	holder = threading.Thread(target=hold_one_row)
	holder.start()
	try:
		assert locked.wait(timeout=30)
		started = time.monotonic()
		assert retry_queue.requeue_due_retries(batch_size=5) == len(jobs) - 1
		assert time.monotonic() - started < 5, "the tick waited for the held row"
	finally:
		release.set()
		holder.join(timeout=60)
	assert helpers.job(held).status == states.RETRYING
	assert retry_queue.requeue_due_retries() == 1
	tokens: dict[str, list[str]] = {}
	for queue in ("default", "long"):
		for token in get_queue(queue).get_jobs():
			tokens.setdefault(token.kwargs["kwargs"]["token_for"], []).append(queue)
			assert token.id == helpers.job(token.kwargs["kwargs"]["token_for"]).rq_job_id
	for job, queue in jobs.items():
		assert helpers.job(job).status == states.QUEUED
		assert helpers.events(job).count("Requeued") == 1
		assert tokens.get(job) == [queue], (job, tokens.get(job))
	assert helpers.run_burst_worker(queues=("default", "long")).returncode == 0
	assert {helpers.job(job).status for job in jobs} == {states.COMPLETED}


def test_retries_that_came_due_while_their_queue_was_paused_go_at_resume(org, job_type_factory):
	from dartwing.dartwing_core.background_jobs import pausing

	on_long = job_type_factory(**{**QUICK_RETRY, "queue": "long", "backoff_schedule": "1"})
	retried = helpers.submit_as(org.user, on_long, {"fail_times": 1})["job_id"]
	assert helpers.run_burst_worker(queues=("long",)).returncode == 0
	try:
		pausing.pause(queue="long")
		frappe.db.commit()
		helpers.wait_for(
			lambda: helpers.job(retried).next_retry_utc < clock.utc_now(), timeout=10, message="the retry due"
		)
		assert helpers.job(retried).status == states.RETRYING
	finally:
		pausing.resume(queue="long")
		frappe.db.commit()
	assert helpers.job(retried).status == states.QUEUED
	assert helpers.run_burst_worker(queues=("long",)).returncode == 0
	assert helpers.job(retried).status == states.COMPLETED


def test_the_schedulers_fallback_moves_due_work_only_while_no_runner_passes(org, job_type_factory):
	flaky = job_type_factory(**QUICK_RETRY)
	retried = helpers.submit_as(org.user, flaky, {"fail_times": 1})["job_id"]
	assert helpers.run_burst_worker(queues=("default",)).returncode == 0
	helpers.wait_for(
		lambda: helpers.job(retried).next_retry_utc < clock.utc_now(), timeout=10, message="the retry due"
	)
	key = upkeep.site_key(upkeep.LIVENESS_KEY)
	get_redis_conn().set(key, json.dumps({"at": time.time(), "runner": "other:1:x", "took": 0.01}))
	assert upkeep.scheduler_fallback() == {"skipped": "upkeep is running"}
	assert upkeep.last_pass()["runner"] == "other:1:x", "a real upkeep runner is alive on this site"
	assert helpers.job(retried).status == states.RETRYING
	get_redis_conn().set(key, json.dumps({"at": time.time() - 60, "runner": "other:1:x", "took": 0.01}))
	assert upkeep.scheduler_fallback()["retries"] == 1
	assert helpers.job(retried).status == states.QUEUED
