"""The metrics rollups hold exactly what the jobs say, hour by hour and day by day, and follow
changes to old hours (retries, deletes) after one refresh."""

from datetime import timedelta

import frappe
import pytest
from frappe.utils import get_datetime, now_datetime

from dartwing.dartwing_core.background_jobs import manual_retry, metrics_math, metrics_rollup, retention
from dartwing.dartwing_core.background_jobs.metrics_segments import DAY, HOUR, floor_day, floor_hour

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
