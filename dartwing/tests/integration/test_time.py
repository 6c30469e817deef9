"""Time: the engine's timing does not depend on the site's time zone or its daylight-saving jumps.

- Across both changes of Europe/Berlin, with an injected clock (``clock.utc_now``): a job that
  heartbeats through the change is not taken for dead, one that stopped is; a retry and a
  ``run_at`` job come due neither an hour early nor an hour late.
- The site's time zone moved east or west while real workers and the upkeep runner run: no job
  starts early or late, no live job is recovered, the schedule fires.
- Dates with offsets (``Z``, ``+02:00``) on the HTTP API are read in the site's zone; garbage is a 417.
"""

import time
from datetime import datetime, timedelta, timezone

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import (
	claiming,
	clock,
	dispatch,
	reaper,
	retry_queue,
	states,
)
from dartwing.dartwing_core.background_jobs.context import SiteClock
from dartwing.dartwing_core.background_jobs.execution import Execution
from dartwing.dartwing_core.background_jobs.settings import get_settings
from dartwing.dartwing_core.background_jobs.side_channel import SideChannel
from dartwing.tests.integration import helpers
from dartwing.tests.integration.test_failures import fast_recovery
from dartwing.tests.integration.test_upkeep import UpkeepRunner

BERLIN = "Europe/Berlin"
# UTC instants of Berlin's changes in 2026: 02:00 CET -> 03:00 CEST, and 03:00 CEST -> 02:00 CET.
SPRING_FORWARD = datetime(2026, 3, 29, 1, 0)
FALL_BACK = datetime(2026, 10, 25, 1, 0)


@pytest.fixture
def site_time_zone():
	"""Set the site's time zone (System Settings) for this process and every worker."""
	original = frappe.db.get_single_value("System Settings", "time_zone")

	def set_zone(zone: str) -> None:
		frappe.db.set_single_value("System Settings", "time_zone", zone)
		frappe.db.commit()
		frappe.clear_document_cache("System Settings", "System Settings")
		if hasattr(frappe.local, "system_settings"):
			del frappe.local.system_settings
		assert not zone or frappe.utils.get_system_timezone() == zone

	yield set_zone
	set_zone(original)


class InjectedClock:
	def __init__(self, at: datetime):
		self.at = at

	def __call__(self) -> datetime:
		return self.at


def _claim_and_run(job: str, queue: str) -> frappe._dict:
	claimed = claiming.claim(queue, None, None)
	frappe.db.commit()
	assert claimed and claimed.name == job, "another Queued job was waiting in the test queue"
	return claimed


@pytest.mark.parametrize("change", [SPRING_FORWARD, FALL_BACK], ids=["spring-forward", "fall-back"])
def test_heartbeats_retries_and_run_at_keep_their_timing_across_a_daylight_saving_change(
	change, org, job_type_factory, site_time_zone, monkeypatch
):
	site_time_zone(BERLIN)
	now = InjectedClock(change - timedelta(seconds=5))
	monkeypatch.setattr(clock, "utc_now", now)
	wall = SiteClock(BERLIN)
	queue = "long"

	# A retry due 10 s after a failure 5 s before the change.
	flaky = job_type_factory(
		handler="demo_fail", queue=queue, max_retries=1, backoff_strategy="Schedule", backoff_schedule="10"
	)
	failing = helpers.submit_as(org.user, flaky, {"fail_times": 1})["job_id"]
	Execution(_claim_and_run(failing, queue)).run()
	row = helpers.job(failing)
	assert row.status == states.RETRYING and row.next_retry_utc == change + timedelta(seconds=5)
	now.at = change + timedelta(seconds=3)
	retry_queue.requeue_due_retries()
	assert helpers.job(failing).status == states.RETRYING, "an hour early"
	now.at = change + timedelta(seconds=6)
	retry_queue.requeue_due_retries()
	assert helpers.job(failing).status == states.QUEUED, "not due on time"
	Execution(_claim_and_run(failing, queue)).run()
	assert helpers.job(failing).status == states.COMPLETED

	# A run_at 4 s after the change, given with an offset.
	now.at = change - timedelta(seconds=2)
	run_at = (change + timedelta(seconds=4)).replace(tzinfo=timezone.utc).isoformat()
	later = helpers.submit_as(org.user, "demo_echo", {"at": run_at}, run_at=run_at)["job_id"]
	assert helpers.job(later).status == states.PENDING
	now.at = change + timedelta(seconds=2)
	dispatch.dispatch_pending()
	assert helpers.job(later).status == states.PENDING, "an hour early"
	now.at = change + timedelta(seconds=5)
	dispatch.dispatch_pending()
	assert helpers.job(later).status == states.QUEUED, "not due on time"

	# A job that heartbeats up to the change and one that stops heartbeating.
	sleeper = job_type_factory(handler="demo_sleep", queue=queue, max_retries=1)
	running = helpers.submit_as(org.user, sleeper, {"seconds": 1})["job_id"]
	now.at = change - timedelta(seconds=3)
	claimed = _claim_and_run(running, queue)
	now.at = change - timedelta(seconds=1)
	channel = SideChannel(running, claimed.attempt)
	assert channel.beat(wall.now())
	channel.close()
	now.at = change + timedelta(seconds=2)
	assert reaper.recover_dead_running() == 0, "a live job taken for dead"
	now.at = change + timedelta(seconds=get_settings().stale_heartbeat_seconds + 1)
	assert reaper.recover_dead_running() == 1, "a dead job taken for live"
	assert "Recovered" in helpers.events(running)


@pytest.mark.parametrize("new_zone", ["Asia/Tokyo", "America/New_York"])
def test_moving_the_sites_time_zone_mid_run_changes_no_outcome(
	new_zone,
	org,
	job_type_factory,
	site_time_zone,
	fast_recovery,  # noqa: F811
):
	site_time_zone(BERLIN)
	sturdy = job_type_factory(handler="demo_sleep", max_retries=1, timeout_seconds=120)
	flaky = job_type_factory(
		handler="demo_fail", max_retries=1, backoff_strategy="Schedule", backoff_schedule="8"
	)
	schedule = frappe.get_doc(
		{
			"doctype": "Job Schedule",
			"schedule_name": helpers.unique("schedule"),
			"job_type": "demo_echo",
			"organization": org.name,
			"run_as": org.user,
			"cron_expression": "0 0 1 1 *",
			"time_zone": "UTC",
			"parameters": {"from": "schedule"},
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	try:
		with UpkeepRunner(), helpers.Worker(), helpers.Worker():
			long_job = helpers.submit_as(org.user, sturdy, {"seconds": 10, "steps": 10})["job_id"]
			helpers.wait_for_status(long_job, states.RUNNING)
			retried = helpers.submit_as(org.user, flaky, {"fail_times": 1})["job_id"]
			helpers.wait_for_status(retried, states.RETRYING)
			due = clock.utc_now() + timedelta(seconds=6)
			later = helpers.submit_as(
				org.user, "demo_echo", {"zone": new_zone}, run_at=clock.utc_to_site(due)
			)["job_id"]
			frappe.db.set_value(
				"Job Schedule",
				schedule.name,
				{"next_run_utc": due, "next_run_at": clock.utc_to_site(due)},
				update_modified=False,
			)
			frappe.db.commit()

			site_time_zone(new_zone)
			while clock.utc_now() < due - timedelta(seconds=1):
				assert helpers.job(later).status == states.PENDING, "run_at came early"
				assert helpers.job(retried).status == states.RETRYING, "the retry came early"
				assert not frappe.db.exists("Background Job", {"job_schedule": schedule.name})
				time.sleep(0.2)

			assert helpers.wait_for_status(later, states.COMPLETED, timeout=20).attempt == 1
			assert helpers.wait_for_status(retried, states.COMPLETED, timeout=20).attempt == 2
			fired = helpers.wait_for(
				lambda: frappe.db.get_value("Background Job", {"job_schedule": schedule.name}, "name"),
				timeout=20,
				message="the schedule's run",
			)
			helpers.wait_for_status(fired, states.COMPLETED, timeout=20)
			row = helpers.wait_for_status(long_job, states.COMPLETED, timeout=30)
			assert row.attempt == 1 and "Recovered" not in helpers.events(long_job)
	finally:
		frappe.db.rollback()
		helpers.delete_jobs({"job_schedule": schedule.name})
		frappe.db.delete("Job Schedule", {"name": schedule.name})
		frappe.db.commit()


def test_dates_with_offsets_are_read_in_the_sites_zone_over_http(live, org, site_time_zone):
	site_time_zone(BERLIN)
	session = live.session(org.user)

	def submit(run_at, n):
		return live.call(
			session,
			"POST",
			"submit_job",
			job_type="demo_echo",
			organization=org.name,
			parameters={"n": n},
			run_at=run_at,
		)

	jobs = []
	for n, run_at in enumerate(("2099-07-01T10:00:00Z", "2099-07-01T12:00:00+02:00", "2099-07-01 12:00:00")):
		answer = submit(run_at, n)
		assert answer.status_code == 200, answer.text[:500]
		jobs.append(answer.json()["message"]["job_id"])
	for job in jobs:
		row = helpers.job(job)
		assert row.status == states.PENDING
		assert (row.run_at, row.run_at_utc) == (datetime(2099, 7, 1, 12, 0), datetime(2099, 7, 1, 10, 0))

	def listed(**dates):
		answer = live.call(session, "GET", "list_jobs", organization=org.name, limit=100, **dates)
		assert answer.status_code == 200, answer.text[:500]
		return {job["job_id"] for job in answer.json()["message"]["jobs"]}

	utc_now = clock.utc_now().replace(tzinfo=timezone.utc)
	minute = timedelta(minutes=1)
	assert listed(from_date=(utc_now - minute).isoformat(), to_date=(utc_now + minute).isoformat()) == set(
		jobs
	)
	in_berlin = (utc_now - minute).astimezone(clock.site_zone())
	assert listed(from_date=in_berlin.isoformat()) == set(jobs)
	assert listed(from_date=(utc_now + minute).strftime("%Y-%m-%dT%H:%M:%SZ")) == set()

	metrics = live.call(
		session, "GET", "get_job_metrics", organization=org.name, since=(utc_now - minute).isoformat()
	)
	assert metrics.status_code == 200, metrics.text[:500]
	assert metrics.json()["message"]["counts_by_status"][states.PENDING] == len(jobs)

	for method, params in (
		("submit_job", {"job_type": "demo_echo", "organization": org.name, "run_at": "2099-13-45T99:00Z"}),
		("list_jobs", {"from_date": "yesterday-ish"}),
		("list_jobs", {"to_date": "2026-02-30T10:00:00+02:00"}),
		("get_job_metrics", {"since": "not a date"}),
	):
		verb = "POST" if method == "submit_job" else "GET"
		answer = live.call(session, verb, method, **params)
		assert answer.status_code == 417, (method, params, answer.status_code, answer.text[:300])
		assert "not a date" in answer.text


def test_a_lost_token_is_pushed_again_after_the_sites_zone_moved_west(org):
	"""``queued_at`` is site time: after a move west it lies hours ahead, and must not read as 'just queued'."""
	from frappe.utils import now_datetime
	from frappe.utils.background_jobs import get_queue, get_redis_conn
	from rq.job import Job

	job = helpers.submit_as(org.user, "demo_echo", {"west": 1})["job_id"]
	token = Job.fetch(helpers.job(job).rq_job_id, connection=get_redis_conn())
	get_queue(token.origin.rsplit(":", 1)[-1]).remove(token)
	token.delete()
	frappe.db.set_value("Background Job", job, "queued_at", now_datetime() + timedelta(hours=6))
	frappe.db.commit()
	assert reaper.repush_lost_queued() == 1
	assert helpers.run_burst_worker().returncode == 0
	assert helpers.job(job).status == states.COMPLETED
