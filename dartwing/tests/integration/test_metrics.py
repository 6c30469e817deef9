"""Metrics and queue statistics agree with counts computed independently, and are scoped."""

import frappe
import pytest

from dartwing.dartwing_core.background_jobs import metrics, metrics_math, states
from dartwing.tests.integration import helpers


def percentile_cont(values: list[float], fraction: float) -> float:
	"""SQL's PERCENTILE_CONT: linear interpolation between the two nearest ranks."""
	ordered = sorted(values)
	position = fraction * (len(ordered) - 1)
	low = int(position)
	high = min(low + 1, len(ordered) - 1)
	return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def worked_org(org, job_type_factory):
	"""An organization with completed, failed, queued and delayed jobs of one fresh job type."""
	job_type = job_type_factory(handler="demo_fail", max_retries=0, queue="short")
	for n in range(6):
		helpers.submit_as(org.user, job_type, {"fail_times": 0, "n": n})
	for n in range(3):
		helpers.submit_as(org.user, job_type, {"error": "permanent", "n": n})
	helpers.run_burst_worker()
	helpers.submit_as(org.user, job_type, {"queued": 1})
	helpers.submit_as(org.user, job_type, {"delayed": 1}, run_at="2099-01-01 00:00:00")
	frappe.db.commit()
	return frappe._dict(name=org.name, user=org.user, job_type=job_type)


def test_job_metrics_match_independent_counts(worked_org):
	frappe.set_user(worked_org.user)
	try:
		answer = metrics.job_metrics(organization=worked_org.name)
	finally:
		frappe.set_user("Administrator")

	rows = frappe.get_all(
		"Background Job",
		filters={"organization": worked_org.name},
		fields=["status", "priority", "queue", "run_time", "wait_time", "started_at", "finished_at"],
	)
	by_status = {status: sum(r.status == status for r in rows) for status in states.STATUSES}
	assert answer["counts_by_status"] == by_status
	assert by_status[states.COMPLETED] == 6 and by_status[states.FAILED] == 3

	waiting = [r for r in rows if r.status in (states.PENDING, states.QUEUED)]
	assert sum(d["jobs"] for d in answer["queue_depth"]) == len(waiting) == 2

	(row,) = (t for t in answer["job_types"] if t["job_type"] == worked_org.job_type)
	ran = [r for r in rows if r.started_at and r.finished_at]
	assert (row["jobs"], row["completed"], row["failed"]) == (len(rows), 6, 3)
	assert row["failure_rate"] == pytest.approx(3 / 9, abs=1e-4)
	run_times = [r.run_time for r in ran]
	assert row["run_time"]["avg"] == pytest.approx(sum(run_times) / len(run_times), abs=1e-3)
	# Percentiles come from log-scale histograms: within half a bucket (metrics_math), or the 1 ms floor.
	close = {"rel": metrics_math.ACCURACY + 1e-4, "abs": 1e-3}
	assert row["run_time"]["p50"] == pytest.approx(percentile_cont(run_times, 0.5), **close)
	assert row["run_time"]["p95"] == pytest.approx(percentile_cont(run_times, 0.95), **close)
	assert row["wait_time"]["p95"] == pytest.approx(
		percentile_cont([r.wait_time for r in ran], 0.95), **close
	)
	assert answer["finished"] == 9
	assert answer["throughput_per_minute"] == pytest.approx(9 / (24 * 60), rel=0.01)


def test_members_see_only_their_organizations(worked_org):
	other_org, other_user = helpers.make_org_with_user()
	try:
		frappe.set_user(other_user)
		assert sum(metrics.job_metrics()["counts_by_status"].values()) == 0
		with pytest.raises(frappe.PermissionError):
			metrics.job_metrics(organization=worked_org.name)
	finally:
		frappe.set_user("Administrator")
		helpers.cleanup_org(other_org)
	everything = metrics.job_metrics()
	assert everything["counts_by_status"][states.COMPLETED] >= 6, "managers see every organization"


def test_queue_stats_match_independent_counts(worked_org):
	(row,) = (r for r in metrics.queue_stats()["queues"] if r["job_type"] == worked_org.job_type)
	assert row == {
		"queue": "short",
		"job_type": worked_org.job_type,
		"waiting": 1,
		"active": 0,
		"delayed": 1,
		"retrying": 0,
		"failed": 3,
		"completed": 6,
		"handed_back": 0,
		"recoveries": 0,
		"paused": False,
	}


def test_workers_are_counted_by_their_own_keys():
	from frappe.utils.background_jobs import get_redis_conn

	with helpers.Worker():
		helpers.wait_for(
			lambda: metrics.active_workers()["registered"] >= 1, message="the worker to register"
		)
		get_redis_conn().delete("rq:workers")  # RQ's set of workers, as a Redis flush leaves it
		assert metrics.active_workers()["registered"] >= 1


def test_api_metrics_workspace_chart_and_report_give_the_same_percentiles(worked_org):
	"""One percentile for all three (they used to compute three different ones)."""
	from dartwing.dartwing_core.api import desk
	from dartwing.dartwing_core.report.job_type_health import job_type_health

	# Spread the run times of the jobs that ran, so an exact percentile and a histogram's differ.
	ran = frappe.get_all(
		"Background Job",
		filters={"job_type": worked_org.job_type, "finished_at": ("is", "set")},
		pluck="name",
		order_by="name",
	)
	run_times = [3.0 + 0.77 * i for i in range(len(ran))]
	for name, run_time in zip(ran, run_times, strict=True):
		frappe.db.set_value("Background Job", name, "run_time", run_time, update_modified=False)
	frappe.db.commit()

	frappe.set_user(worked_org.user)
	try:
		(api,) = (
			t["run_time"]
			for t in metrics.job_metrics(organization=worked_org.name)["job_types"]
			if t["job_type"] == worked_org.job_type
		)
		chart = desk.run_time_by_job_type()
		(report,) = (r for r in job_type_health.execute({})[1] if r.job_type == worked_org.job_type)
	finally:
		frappe.set_user("Administrator")
	chart_p95 = dict(zip(chart["labels"], chart["datasets"][1]["values"], strict=True))[worked_org.job_type]

	assert api["p95"] == pytest.approx(report.run_p95, abs=1e-4)
	assert api["p50"] == pytest.approx(report.run_p50, abs=1e-4)
	assert chart_p95 == round(report.run_p95, 2)
	assert report.run_p95 == pytest.approx(percentile_cont(run_times, 0.95), rel=0.011)
