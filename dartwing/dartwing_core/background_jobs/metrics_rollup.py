"""Metrics rollups: job counts and run/wait time histograms per hour and per day, so a metrics
window of any length reads a few thousand stored rows instead of every job in it.

Contract:
- Tables (hidden Dartwing Core doctypes, read-only for System Managers, never shown to tenants
  through Frappe's generic endpoints): ``Job Metrics Count``, key (period "Hour"/"Day",
  period_start in site time, organization, job_type, queue, priority, status) -> jobs, finished
  (``finished_at`` set), ran (started and finished), attempts, run_total and wait_total (of the
  jobs that ran), last_finished_at; ``Job Metrics Histogram``, key (period, period_start,
  organization, job_type, measure ``run_time``/``wait_time``, ``metrics_math`` bucket) -> jobs
  that ran; ``Job Metrics Period``, one row per stored period (``computed_at``; an hour without
  jobs is stored as this row alone, so it differs from an hour never computed; ``dirty``: due
  for recomputing) and the ``Refresh`` row, whose ``computed_at`` is when the last refresh began.
- Rows are keyed by the job's ``creation`` (``metrics.job_metrics`` counts jobs created since
  ``since``). The current hour is never stored; a day is stored once its 24 hours are, as their
  sum, and again whenever one of them is recomputed.
- ``refresh(now=None, time_budget_seconds=...)`` runs in the upkeep runner's full sweep (once a
  minute) and in the scheduler fallback. It marks dirty the creation hours of jobs modified since
  the previous refresh began, less ``MODIFIED_MARGIN`` (an index range on ``modified``), and
  every hour that ended since then; it then recomputes dirty complete hours, newest first, each
  in one transaction from its own raw rows (delete, aggregate, insert), then the days whose hours
  changed. Its cost follows recent activity, not the size of the history. The first refresh of
  a site (or ``mark_all_dirty``, also run by the v0_2 patch) marks every hour since the oldest
  job: the backfill, done within each refresh's time budget, newest hours first.
- Deleting jobs: call ``mark_jobs_dirty`` in the deleting transaction before the rows go (a
  deleted row leaves no ``modified`` behind): retention, a Desk delete and the benchmark do.
- Staleness: a change to a job of a past hour (a manual retry, a late status, a retention delete)
  shows in the stored figures after the next refresh: within one upkeep minute (a minute more
  when only the scheduler fallback runs). A transaction that commits more than
  ``MODIFIED_MARGIN`` after it wrote ``modified`` is missed until its hour is marked again.
- ``rebuild()`` marks every hour and refreshes until nothing is left (tests, benchmarks, repair).
"""

import time
from datetime import datetime, timedelta

import frappe
from frappe.utils import get_datetime, now_datetime

from dartwing.dartwing_core.background_jobs import metrics_math
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger
from dartwing.dartwing_core.background_jobs.metrics_segments import DAY, HOUR, floor_day, floor_hour

COUNT_TABLE = "Job Metrics Count"
HISTOGRAM_TABLE = "Job Metrics Histogram"
PERIOD_TABLE = "Job Metrics Period"
REFRESH_ROW = "Refresh"
MODIFIED_MARGIN = timedelta(minutes=2)
TIME_BUDGET_SECONDS = 0.5
MEASURES = ("run_time", "wait_time")
# The jobs that ran to an end: the population of every run and wait time figure.
RAN_SQL = "started_at IS NOT NULL AND finished_at IS NOT NULL"
COUNT_MEASURES = ("jobs", "finished", "ran", "attempts", "run_total", "wait_total", "last_finished_at")
COUNT_KEY = ("organization", "job_type", "queue", "priority", "status")
HISTOGRAM_KEY = ("organization", "job_type", "measure", "bucket")
_STANDARD = ("name", "creation", "modified", "owner", "modified_by", "docstatus")


def period_name(period: str, start: datetime) -> str:
	return f"{period} {start:%Y-%m-%d %H:%M:%S}"


# ------------------------------------------------------------------ marking


def _mark_hours(hours) -> int:
	"""Mark these hours (period starts) dirty; returns how many."""
	hours = sorted({floor_hour(get_datetime(hour)) for hour in hours})
	now = now_datetime()
	for chunk in range(0, len(hours), 1000):
		part = hours[chunk : chunk + 1000]
		frappe.db.sql(
			f"""INSERT INTO `tab{PERIOD_TABLE}` ({", ".join(_STANDARD)}, period, period_start, dirty)
			VALUES {", ".join(["(%s, %s, %s, 'Administrator', 'Administrator', 0, 'Hour', %s, 1)"] * len(part))}
			ON DUPLICATE KEY UPDATE dirty = 1""",
			[value for hour in part for value in (period_name("Hour", hour), now, now, hour)],
		)
	return len(hours)


def mark_jobs_dirty(where: str, values: dict | tuple | None = None) -> int:
	"""Mark dirty the creation hours of the jobs matching ``where`` (before deleting them)."""
	hours = frappe.db.sql_list(
		f"""SELECT DISTINCT DATE_FORMAT(creation, '%%Y-%%m-%%d %%H:00:00') FROM `tabBackground Job`
		WHERE {where}""",
		values if values is not None else {},
	)
	return _mark_hours(hours)


def mark_all_dirty(now: datetime | None = None) -> int:
	"""Mark every hour from the oldest job's to the current one (exclusive) dirty."""
	current = floor_hour(now or now_datetime())
	oldest = frappe.db.sql("SELECT MIN(creation) FROM `tabBackground Job`")[0][0]
	if not oldest:
		return 0
	hour, hours = floor_hour(get_datetime(oldest)), []
	while hour < current:
		hours.append(hour)
		hour += HOUR
	return _mark_hours(hours)


def _mark_since_watermark(now: datetime) -> int:
	"""Lock the Refresh row, mark what changed since the last refresh began, move the watermark."""
	current = floor_hour(now)
	row = frappe.db.sql(
		f"SELECT computed_at FROM `tab{PERIOD_TABLE}` WHERE name = %s FOR UPDATE", REFRESH_ROW
	)
	if not row:
		frappe.db.sql(
			f"""INSERT IGNORE INTO `tab{PERIOD_TABLE}` ({", ".join(_STANDARD)}, period, dirty)
			VALUES (%s, %s, %s, 'Administrator', 'Administrator', 0, 'Refresh', 0)""",
			(REFRESH_ROW, now, now),
		)
		row = frappe.db.sql(
			f"SELECT computed_at FROM `tab{PERIOD_TABLE}` WHERE name = %s FOR UPDATE", REFRESH_ROW
		)
	watermark = row[0][0]
	if watermark is None:
		marked = mark_all_dirty(now)
	else:
		since = get_datetime(watermark) - MODIFIED_MARGIN
		changed = frappe.db.sql_list(
			"""SELECT DISTINCT DATE_FORMAT(creation, '%%Y-%%m-%%d %%H:00:00') FROM `tabBackground Job`
			WHERE modified >= %s""",
			since,
		)
		ended, hour = [], floor_hour(since)
		while hour < current:
			ended.append(hour)
			hour += HOUR
		marked = _mark_hours([hour for hour in changed if get_datetime(hour) < current] + ended)
	frappe.db.sql(
		f"UPDATE `tab{PERIOD_TABLE}` SET computed_at = %s, modified = %s WHERE name = %s",
		(now, now, REFRESH_ROW),
	)
	frappe.db.commit()
	return marked


# ------------------------------------------------------------------ computing


def _insert(table: str, columns: tuple[str, ...], rows: list, now: datetime) -> None:
	if not rows:
		return
	frappe.db.bulk_insert(
		table,
		[*_STANDARD, *columns],
		[
			(frappe.generate_hash(length=20), now, now, "Administrator", "Administrator", 0, *row)
			for row in rows
		],
	)


def _compute_hour(hour: datetime, now: datetime) -> bool:
	"""Recompute one hour in its own transaction; False when another refresh already did."""
	name = period_name("Hour", hour)
	# The lock comes before the consistent read of the jobs: a delete that marked this hour and
	# committed is seen, and one that marks it later waits, and leaves it dirty for next time.
	marker = frappe.db.sql(
		f"SELECT dirty, computed_at FROM `tab{PERIOD_TABLE}` WHERE name = %s FOR UPDATE", name
	)
	if marker and not marker[0][0] and marker[0][1] and get_datetime(marker[0][1]) >= now:
		frappe.db.rollback()
		return False
	window = {"start": hour, "end": hour + HOUR}
	counts = frappe.db.sql(
		f"""SELECT 'Hour', %(start)s, organization, job_type, queue, priority, status,
			COUNT(*), SUM(finished_at IS NOT NULL), SUM({RAN_SQL}), COALESCE(SUM(attempt), 0),
			COALESCE(SUM(CASE WHEN {RAN_SQL} THEN run_time END), 0),
			COALESCE(SUM(CASE WHEN {RAN_SQL} THEN wait_time END), 0), MAX(finished_at)
		FROM `tabBackground Job` WHERE creation >= %(start)s AND creation < %(end)s
		GROUP BY organization, job_type, queue, priority, status""",
		window,
	)
	histograms = frappe.db.sql(
		" UNION ALL ".join(
			f"""SELECT 'Hour', %(start)s, organization, job_type, '{measure}',
				{metrics_math.bucket_sql(measure)} AS bucket, COUNT(*)
			FROM `tabBackground Job` WHERE creation >= %(start)s AND creation < %(end)s AND {RAN_SQL}
			GROUP BY organization, job_type, bucket"""
			for measure in MEASURES
		),
		window,
	)
	for table in (COUNT_TABLE, HISTOGRAM_TABLE):
		frappe.db.sql(f"DELETE FROM `tab{table}` WHERE period = 'Hour' AND period_start = %s", hour)
	_insert(COUNT_TABLE, ("period", "period_start", *COUNT_KEY, *COUNT_MEASURES), counts, now)
	_insert(HISTOGRAM_TABLE, ("period", "period_start", *HISTOGRAM_KEY, "jobs"), histograms, now)
	frappe.db.sql(
		f"""INSERT INTO `tab{PERIOD_TABLE}` ({", ".join(_STANDARD)}, period, period_start, computed_at, dirty)
		VALUES (%s, %s, %s, 'Administrator', 'Administrator', 0, 'Hour', %s, %s, 0)
		ON DUPLICATE KEY UPDATE computed_at = VALUES(computed_at), dirty = 0, modified = VALUES(modified)""",
		(name, now, now, hour, now),
	)
	frappe.db.commit()
	return True


def _compute_day(day: datetime, now: datetime) -> bool:
	"""Sum a day's 24 stored hours into Day rows; a day with an hour not stored is not stored."""
	name = period_name("Day", day)
	frappe.db.sql(f"SELECT name FROM `tab{PERIOD_TABLE}` WHERE name = %s FOR UPDATE", name)
	window = {"start": day, "end": day + DAY, "now": now, "name": name}
	stored = frappe.db.sql(
		f"""SELECT COUNT(*) FROM `tab{PERIOD_TABLE}` WHERE period = 'Hour'
		AND period_start >= %(start)s AND period_start < %(end)s AND computed_at IS NOT NULL""",
		window,
	)[0][0]
	for table in (COUNT_TABLE, HISTOGRAM_TABLE):
		frappe.db.sql(f"DELETE FROM `tab{table}` WHERE period = 'Day' AND period_start = %s", day)
	if stored < 24:
		frappe.db.sql(f"DELETE FROM `tab{PERIOD_TABLE}` WHERE name = %s", name)
		frappe.db.commit()
		return False
	standard = "UUID(), %(now)s, %(now)s, 'Administrator', 'Administrator', 0, 'Day', %(start)s"
	frappe.db.sql(
		f"""INSERT INTO `tab{COUNT_TABLE}` ({", ".join(_STANDARD)}, period, period_start,
			{", ".join(COUNT_KEY)}, {", ".join(COUNT_MEASURES)})
		SELECT {standard}, {", ".join(COUNT_KEY)}, SUM(jobs), SUM(finished), SUM(ran), SUM(attempts),
			SUM(run_total), SUM(wait_total), MAX(last_finished_at)
		FROM `tab{COUNT_TABLE}` WHERE period = 'Hour' AND period_start >= %(start)s AND period_start < %(end)s
		GROUP BY {", ".join(COUNT_KEY)}""",
		window,
	)
	frappe.db.sql(
		f"""INSERT INTO `tab{HISTOGRAM_TABLE}` ({", ".join(_STANDARD)}, period, period_start,
			{", ".join(HISTOGRAM_KEY)}, jobs)
		SELECT {standard}, {", ".join(HISTOGRAM_KEY)}, SUM(jobs)
		FROM `tab{HISTOGRAM_TABLE}` WHERE period = 'Hour' AND period_start >= %(start)s AND period_start < %(end)s
		GROUP BY {", ".join(HISTOGRAM_KEY)}""",
		window,
	)
	frappe.db.sql(
		f"""INSERT INTO `tab{PERIOD_TABLE}` ({", ".join(_STANDARD)}, period, period_start, computed_at, dirty)
		VALUES (%(name)s, %(now)s, %(now)s, 'Administrator', 'Administrator', 0, 'Day', %(start)s, %(now)s, 0)
		ON DUPLICATE KEY UPDATE computed_at = VALUES(computed_at), modified = VALUES(modified)""",
		window,
	)
	frappe.db.commit()
	return True


def refresh(now: datetime | None = None, time_budget_seconds: float = TIME_BUDGET_SECONDS) -> dict:
	"""Mark what changed, then recompute dirty complete hours (newest first) and their days
	until nothing is dirty or the time budget is spent. Commits as it goes."""
	started = time.monotonic()
	now = now or now_datetime()
	current = floor_hour(now)
	done = {"marked": _mark_since_watermark(now), "hours": 0, "days": 0, "left": 0}
	days: set[datetime] = set()
	while True:
		due = frappe.db.sql_list(
			f"""SELECT period_start FROM `tab{PERIOD_TABLE}`
			WHERE period = 'Hour' AND dirty = 1 AND period_start < %s
			ORDER BY period_start DESC LIMIT 50""",
			current,
		)
		if not due:
			break
		for hour in due:
			if time.monotonic() - started >= time_budget_seconds:
				break
			hour = get_datetime(hour)
			if _compute_hour(hour, now):
				done["hours"] += 1
			days.add(floor_day(hour))
		else:
			continue
		break
	for day in sorted(days, reverse=True):
		if day + DAY <= current and _compute_day(day, now):
			done["days"] += 1
	done["left"] = frappe.db.sql(
		f"""SELECT COUNT(*) FROM `tab{PERIOD_TABLE}` WHERE period = 'Hour' AND dirty = 1
		AND period_start < %s""",
		current,
	)[0][0]
	done["seconds"] = round(time.monotonic() - started, 3)
	if done["hours"] or done["left"]:
		jobs_logger().info({"event": "metrics_rollup_refresh", **done})
	return done


def rebuild(now: datetime | None = None) -> dict:
	"""Recompute every stored hour and day from the jobs (a backfill, or a repair)."""
	now = now or now_datetime()
	started = time.monotonic()
	marked = mark_all_dirty(now)
	frappe.db.commit()
	hours = days = 0
	while True:
		done = refresh(now=now, time_budget_seconds=60)
		hours, days = hours + done["hours"], days + done["days"]
		if not done["left"]:
			break
	return {"marked": marked, "hours": hours, "days": days, "seconds": round(time.monotonic() - started, 3)}
