"""The metrics rollups hold exactly what the jobs say, hour by hour and day by day, and follow
changes to old hours (retries, deletes) after one refresh."""

from datetime import timedelta

import frappe
import pytest
from frappe.utils import get_datetime, now_datetime

from dartwing.dartwing_core.background_jobs import (
	desk_views,
	manual_retry,
	metrics,
	metrics_math,
	metrics_rollup,
	retention,
	states,
)
from dartwing.dartwing_core.background_jobs.metrics_segments import DAY, HOUR, floor_day, floor_hour
from dartwing.dartwing_core.report.job_type_health import job_type_health
from dartwing.tests.integration import helpers

STATUSES = ("Completed", "Completed", "Completed", "Failed", "Dead Letter", "Canceled", "Queued", "Retrying")


def insert_jobs(organization: str, job_type: str, count: int, hours_back: int = 50) -> None:
	"""``count`` jobs created over the last ``hours_back`` hours, written now (``modified``)."""
	frappe.db.sql(
		f"""INSERT INTO `tabBackground Job` (name, creation, modified, owner, modified_by, docstatus,
			job_type, organization, status, priority, queue, parameters, parameters_hash, attempt,
			max_retries, timeout_seconds, queued_at, started_at, finished_at, wait_time, run_time)
		SELECT CONCAT(%(organization)s, '-', seq), created, %(now)s, 'Administrator', 'Administrator', 0,
			%(job_type)s, %(organization)s,
			ELT(1 + seq %% {len(STATUSES)}, {", ".join(f"'{status}'" for status in STATUSES)}),
			ELT(1 + seq %% 3, 'Low', 'Normal', 'High'), ELT(1 + seq %% 2, 'short', 'default'), '{{}}',
			MD5(CONCAT(%(organization)s, seq)), 1 + seq %% 2, 0, 60, created,
			IF(seq %% {len(STATUSES)} < 5, created + INTERVAL 1 SECOND, NULL),
			IF(seq %% {len(STATUSES)} < 6, created + INTERVAL 3 SECOND, NULL),
			IF(seq %% {len(STATUSES)} < 5, (seq %% 97) / 10, 0), IF(seq %% {len(STATUSES)} < 5, 0.05 + (seq %% 61) / 7, 0)
		FROM (SELECT seq, %(now)s - INTERVAL ((seq * 37) %% ({hours_back} * 60)) MINUTE - INTERVAL seq %% 59 SECOND AS created
			FROM seq_1_to_{count}) generated""",
		{"organization": organization, "job_type": job_type, "now": now_datetime()},
	)
	frappe.db.commit()


def refresh() -> dict:
	done = metrics_rollup.refresh(time_budget_seconds=120)
	assert not done["left"], done
	return done


def raw_counts(organization: str, before) -> dict:
	rows = frappe.db.sql(
		"""SELECT DATE_FORMAT(creation, '%%Y-%%m-%%d %%H:00:00'), job_type, queue, priority, status,
			COUNT(*), SUM(finished_at IS NOT NULL), SUM(started_at IS NOT NULL AND finished_at IS NOT NULL),
			SUM(attempt), ROUND(SUM(IF(started_at IS NOT NULL AND finished_at IS NOT NULL, run_time, 0)), 4),
			ROUND(SUM(IF(started_at IS NOT NULL AND finished_at IS NOT NULL, wait_time, 0)), 4)
		FROM `tabBackground Job` WHERE organization = %s AND creation < %s
		GROUP BY 1, 2, 3, 4, 5""",
		(organization, before),
	)
	return {(get_datetime(row[0]), *row[1:5]): tuple(float(v) for v in row[5:]) for row in rows}


def stored_counts(organization: str, period: str = "Hour") -> dict:
	rows = frappe.db.sql(
		"""SELECT period_start, job_type, queue, priority, status, jobs, finished, ran, attempts,
			ROUND(run_total, 4), ROUND(wait_total, 4)
		FROM `tabJob Metrics Count` WHERE organization = %s AND period = %s""",
		(organization, period),
	)
	return {(get_datetime(row[0]), *row[1:5]): tuple(float(v) for v in row[5:]) for row in rows}


def raw_histogram(organization: str, before) -> dict:
	rows = frappe.db.sql(
		" UNION ALL ".join(
			f"""SELECT DATE_FORMAT(creation, '%%Y-%%m-%%d %%H:00:00'), '{measure}',
				{metrics_math.bucket_sql(measure)}, COUNT(*)
			FROM `tabBackground Job` WHERE organization = %(org)s AND creation < %(before)s
				AND started_at IS NOT NULL AND finished_at IS NOT NULL GROUP BY 1, 2, 3"""
			for measure in ("run_time", "wait_time")
		),
		{"org": organization, "before": before},
	)
	return {(get_datetime(hour), measure, int(bucket)): int(n) for hour, measure, bucket, n in rows}


def stored_histogram(organization: str) -> dict:
	rows = frappe.db.sql(
		"""SELECT period_start, measure, bucket, jobs FROM `tabJob Metrics Histogram`
		WHERE organization = %s AND period = 'Hour'""",
		organization,
	)
	return {(get_datetime(start), measure, int(bucket)): int(n) for start, measure, bucket, n in rows}


@pytest.fixture
def history(org, job_type_factory):
	job_type = job_type_factory(handler="demo_fail", max_retries=0, queue="short")
	insert_jobs(org.name, job_type, 600)
	refresh()
	return frappe._dict(name=org.name, user=org.user, job_type=job_type)


def test_hours_hold_exactly_the_raw_counts_and_histograms_after_a_refresh(history):
	current = floor_hour(now_datetime())
	expected = raw_counts(history.name, current)
	assert len({key[0] for key in expected}) >= 45, "the jobs span about 50 hours"
	assert stored_counts(history.name) == expected
	assert stored_histogram(history.name) == raw_histogram(history.name, current)
	# Every complete hour since the oldest job is marked computed, with or without jobs.
	oldest = floor_hour(get_datetime(min(key[0] for key in expected)))
	computed = frappe.db.sql_list(
		"""SELECT period_start FROM `tabJob Metrics Period` WHERE period = 'Hour' AND dirty = 0
		AND computed_at IS NOT NULL AND period_start >= %s AND period_start < %s""",
		(oldest, current),
	)
	assert len(computed) == int((current - oldest) / HOUR)
	assert not frappe.db.get_value(
		"Job Metrics Period", metrics_rollup.period_name("Hour", current), "computed_at"
	), "the current hour is never stored"


def test_days_are_the_sum_of_their_hours(history):
	current = floor_hour(now_datetime())
	hours = stored_counts(history.name)
	days = stored_counts(history.name, "Day")
	assert days, "the jobs span at least one whole day"
	stored_days = {
		get_datetime(day)
		for day in frappe.db.sql_list(
			"""SELECT period_start FROM `tabJob Metrics Period` WHERE period = 'Day'
			AND computed_at IS NOT NULL"""
		)
	}
	# A day is stored once all its hours are (hours before the site's first job never are).
	assert floor_day(current) - DAY in stored_days
	expected: dict = {}
	for (start, *key), measures in hours.items():
		day = floor_day(start)
		if day in stored_days:
			assert day + DAY <= current
			total = expected.get((day, *key), (0.0,) * len(measures))
			expected[(day, *key)] = tuple(a + b for a, b in zip(total, measures, strict=True))
	assert days.keys() == expected.keys()
	for key, measures in days.items():
		assert measures == pytest.approx(expected[key], abs=1e-3), key


def test_a_manual_retry_of_a_job_in_an_old_hour_shows_after_one_refresh(history):
	job, created = frappe.db.sql(
		"""SELECT name, creation FROM `tabBackground Job` WHERE organization = %s AND status = 'Failed'
		AND creation < %s ORDER BY creation LIMIT 1""",
		(history.name, now_datetime() - timedelta(hours=5)),
	)[0]
	hour = floor_hour(get_datetime(created))
	before = {key: value for key, value in stored_counts(history.name).items() if key[0] == hour}
	manual_retry.retry(job)
	frappe.db.commit()
	done = refresh()
	assert done["hours"] >= 1
	after = {key: value for key, value in stored_counts(history.name).items() if key[0] == hour}
	assert after != before
	assert after == {
		key: value for key, value in raw_counts(history.name, hour + HOUR).items() if key[0] == hour
	}
	assert any(key[4] == "Queued" for key in after)


def test_jobs_deleted_by_retention_leave_the_rollups_after_one_refresh(history):
	cutoff = now_datetime() - timedelta(hours=30)
	names = frappe.db.sql_list(
		"SELECT name FROM `tabBackground Job` WHERE organization = %s AND creation < %s",
		(history.name, cutoff),
	)
	assert len(names) > 100
	retention.delete_jobs(names)
	frappe.db.commit()
	refresh()
	current = floor_hour(now_datetime())
	assert stored_counts(history.name) == raw_counts(history.name, current)
	assert stored_histogram(history.name) == raw_histogram(history.name, current)
	old_days = [key for key in stored_counts(history.name, "Day") if key[0] + DAY <= floor_hour(cutoff)]
	assert not old_days, "whole days before the cut hold nothing any more"


def computed_at(organization: str) -> dict:
	"""When each hour holding this organization's jobs was last computed."""
	return dict(
		frappe.db.sql(
			"""SELECT period.period_start, period.computed_at FROM `tabJob Metrics Period` period
			WHERE period.period = 'Hour' AND period.period_start IN (
				SELECT period_start FROM `tabJob Metrics Count` WHERE organization = %s AND period = 'Hour')""",
			organization,
		)
	)


def test_a_refresh_recomputes_the_hours_that_changed_not_the_history(history):
	# As if the jobs had been written ten minutes ago: out of the refresh's margin.
	frappe.db.sql(
		"UPDATE `tabBackground Job` SET modified = %s WHERE organization = %s",
		(now_datetime() - timedelta(minutes=10), history.name),
	)
	frappe.db.commit()
	refresh()
	before = computed_at(history.name)
	assert len(before) >= 45
	refresh()
	after = computed_at(history.name)
	# Nothing of this organization changed: at most the hour that just ended is computed again.
	assert len([hour for hour in before if after[hour] != before[hour]]) <= 1
	job, created = frappe.db.sql(
		"""SELECT name, creation FROM `tabBackground Job` WHERE organization = %s AND status = 'Queued'
		AND creation < %s ORDER BY creation LIMIT 1""",
		(history.name, now_datetime() - timedelta(hours=20)),
	)[0]
	frappe.db.sql(
		"UPDATE `tabBackground Job` SET modified = %s, status = 'Canceled' WHERE name = %s",
		(now_datetime(), job),
	)
	frappe.db.commit()
	refresh()
	changed = computed_at(history.name)
	assert changed[floor_hour(get_datetime(created))] != after[floor_hour(get_datetime(created))]
	assert len([hour for hour in after if changed[hour] != after[hour]]) <= 2
	assert stored_counts(history.name) == raw_counts(history.name, floor_hour(now_datetime()))


# ------------------------------------------------------------------ the read path


def percentile_cont(values: list[float], fraction: float) -> float:
	ordered = sorted(values)
	position = fraction * (len(ordered) - 1)
	low = int(position)
	high = min(low + 1, len(ordered) - 1)
	return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def assert_metrics_match_the_jobs(organization: str, since, *, as_user: str | None = None) -> dict:
	"""``job_metrics`` over ``since`` equals what the organization's own rows say (counts exactly,
	percentiles within half a bucket); returns the answer."""
	if as_user:
		frappe.set_user(as_user)
	try:
		answer = metrics.job_metrics(organization=None if as_user else organization, since=str(since))
	finally:
		frappe.set_user("Administrator")
	rows = frappe.db.sql(
		"""SELECT job_type, status, queue, priority, started_at, finished_at, run_time, wait_time
		FROM `tabBackground Job` WHERE organization = %s AND creation >= %s""",
		(organization, since),
		as_dict=True,
	)
	assert rows, "the window holds jobs"
	by_status = dict.fromkeys(states.STATUSES, 0)
	for row in rows:
		by_status[row.status] += 1
	assert answer["counts_by_status"] == by_status
	assert answer["finished"] == sum(1 for row in rows if row.finished_at and row.finished_at >= since)
	depth: dict = {}
	for row in rows:
		if row.status in (states.PENDING, states.QUEUED):
			depth[(row.queue, row.priority)] = depth.get((row.queue, row.priority), 0) + 1
	assert {(d["queue"], d["priority"]): d["jobs"] for d in answer["queue_depth"]} == depth
	close = {"rel": metrics_math.ACCURACY + 1e-6, "abs": 1.001e-3}
	for entry in answer["job_types"]:
		mine = [row for row in rows if row.job_type == entry["job_type"]]
		ran = [row for row in mine if row.started_at and row.finished_at]
		failed = sum(row.status in states.FAILED_STATUSES for row in mine)
		completed = sum(row.status == states.COMPLETED for row in mine)
		assert (entry["jobs"], entry["completed"], entry["failed"]) == (len(mine), completed, failed)
		run_times, wait_times = [row.run_time for row in ran], [row.wait_time for row in ran]
		assert entry["run_time"]["avg"] == pytest.approx(sum(run_times) / len(run_times), abs=1e-3)
		assert entry["wait_time"]["avg"] == pytest.approx(sum(wait_times) / len(wait_times), abs=1e-3)
		for fraction, name in ((0.5, "p50"), (0.95, "p95")):
			assert entry["run_time"][name] == pytest.approx(percentile_cont(run_times, fraction), **close)
			assert entry["wait_time"][name] == pytest.approx(percentile_cont(wait_times, fraction), **close)
	assert {entry["job_type"] for entry in answer["job_types"]} == {row.job_type for row in rows}
	return answer


def windows(now):
	return {
		"24 h": now - timedelta(hours=24),
		"7 days": now - timedelta(days=7),
		"30 days": now - timedelta(days=30),
		"mid-hour": floor_hour(now) - timedelta(hours=26, minutes=-17, seconds=-5),
		"mid-day": floor_day(now) - timedelta(hours=13, minutes=41),
	}


def test_metrics_over_stored_periods_match_the_jobs_for_every_window(history):
	now = now_datetime()
	for name, since in windows(now).items():
		win = metrics.window(since, organization=history.name)
		assert win.stored, f"{name}: the window reads stored periods"
		assert_metrics_match_the_jobs(history.name, since)
	plan_days = metrics.window(now - timedelta(days=7), organization=history.name).values.get("stored_days")
	assert plan_days, "a week reads whole stored days"


def test_metrics_match_after_a_retry_a_retention_delete_and_a_refresh(history):
	job = frappe.db.sql_list(
		"""SELECT name FROM `tabBackground Job` WHERE organization = %s AND status = 'Dead Letter'
		AND creation < %s LIMIT 1""",
		(history.name, now_datetime() - timedelta(hours=30)),
	)[0]
	manual_retry.retry(job)
	old = frappe.db.sql_list(
		"SELECT name FROM `tabBackground Job` WHERE organization = %s AND creation < %s AND status = 'Completed'",
		(history.name, now_datetime() - timedelta(hours=40)),
	)
	retention.delete_jobs(old)
	frappe.db.commit()
	refresh()
	for since in windows(now_datetime()).values():
		assert_metrics_match_the_jobs(history.name, since)


def test_a_member_sees_only_their_organizations_figures(history):
	other, _user = helpers.make_org_with_user()
	try:
		insert_jobs(other, history.job_type, 300)
		refresh()
		for since in windows(now_datetime()).values():
			answer = assert_metrics_match_the_jobs(history.name, since, as_user=history.user)
		everything = metrics.job_metrics(since=str(now_datetime() - timedelta(days=30)))
		assert sum(everything["counts_by_status"].values()) >= sum(answer["counts_by_status"].values()) + 300
		frappe.set_user(history.user)
		with pytest.raises(frappe.PermissionError):
			metrics.job_metrics(organization=other)
		with pytest.raises(frappe.PermissionError):
			frappe.get_list("Job Metrics Count", limit=1)
	finally:
		frappe.set_user("Administrator")
		helpers.cleanup_org(other)


def test_the_report_and_the_workspace_figures_match_the_jobs(history):
	now = now_datetime()
	from_date = (now - timedelta(days=3)).date()
	columns, rows, *_ = job_type_health.execute({"from_date": str(from_date), "organization": history.name})
	(row,) = rows
	jobs = frappe.db.sql(
		"""SELECT name, status, attempt, run_time, started_at, finished_at FROM `tabBackground Job`
		WHERE organization = %s AND creation >= %s""",
		(history.name, from_date),
		as_dict=True,
	)
	failed = [job for job in jobs if job.status in states.FAILED_STATUSES]
	assert (row.jobs, row.runs, row.failed) == (len(jobs), sum(job.attempt for job in jobs), len(failed))
	assert row.completed == sum(job.status == states.COMPLETED for job in jobs)
	latest = max(failed, key=lambda job: (job.finished_at, job.name))
	assert (row.last_failed_job, row.last_failure_at) == (latest.name, latest.finished_at)
	run_times = [job.run_time for job in jobs if job.started_at and job.finished_at]
	assert row.run_p95 == pytest.approx(
		percentile_cont(run_times, 0.95), rel=metrics_math.ACCURACY + 1e-6, abs=1.001e-3
	)

	frappe.set_user(history.user)  # the member's view holds only this organization's jobs
	try:
		chart = desk_views.jobs_per_hour(now)
		run_time = {
			entry.job_type: entry for entry in desk_views.run_time_by_job_type(now - timedelta(days=7))
		}
	finally:
		frappe.set_user("Administrator")
	first_hour = floor_hour(now) - timedelta(hours=23)
	hourly = frappe.db.sql(
		"""SELECT DATE_FORMAT(creation, '%%H:00'), COUNT(*) FROM `tabBackground Job`
		WHERE organization = %s AND creation >= %s GROUP BY 1""",
		(history.name, first_hour),
	)
	totals = [sum(values) for values in zip(*(d["values"] for d in chart["datasets"]), strict=True)]
	assert dict(zip(chart["labels"], totals, strict=True)) == {
		label: dict(hourly).get(label, 0) for label in chart["labels"]
	}
	week = [
		job.run_time
		for job in frappe.db.sql(
			"""SELECT run_time FROM `tabBackground Job` WHERE organization = %s AND creation >= %s
			AND started_at IS NOT NULL AND finished_at IS NOT NULL""",
			(history.name, now - timedelta(days=7)),
			as_dict=True,
		)
	]
	entry = run_time[history.job_type]
	assert entry.avg == pytest.approx(sum(week) / len(week), abs=1e-3)
