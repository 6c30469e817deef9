"""Figures over a creation window: stored rollup periods plus raw rows, read in one SQL each.

Contract:
- ``window(since, until=None, ...)`` is how every figure over a creation window is read: the
  whole hours and days the rollups hold (``metrics_rollup``; periods marked computed only) plus
  the jobs themselves for the rest (``metrics_segments.plan``: the head before the first hour
  boundary, the current hour, any period not stored), merged in SQL (``UNION ALL`` and
  ``GROUP BY``). Stored periods are at most one upkeep minute behind the jobs. The organization,
  job type and the caller's scope apply to both sides (naming an organization the caller cannot
  read raises ``PermissionError``). A job counts as finished in a stored period when it has
  ``finished_at`` (it finished after it was created, so after ``since``).
- ``window_counts(win, keys)`` counts a window's jobs by ``keys`` (with their run and wait totals);
  ``type_percentiles(where | window=...)`` gives p50 / p95 of run and wait time per job type, the
  engine's only percentile: the API metrics, the workspace, queue health and the Job Type Health
  report all read these.
"""

import frappe
from frappe import _
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import metrics_math, metrics_rollup, metrics_segments
from dartwing.dartwing_core.background_jobs.permissions import (
	background_job_query,
	can_read_job,
	organization_scope,
)


def _filters(organization: str | None, job_type: str | None, values: dict, column_prefix: str = "") -> list:
	conditions = []
	if job_type:
		conditions.append(f"{column_prefix}job_type = %(job_type)s")
		values["job_type"] = job_type
	if organization:
		if not can_read_job(organization):
			raise frappe.PermissionError(_("You are not a member of organization {0}").format(organization))
		conditions.append(f"{column_prefix}organization = %(organization)s")
		values["organization"] = organization
	return conditions


# The jobs that ran to an end: the population of every run and wait time figure.
RAN_SQL = metrics_rollup.RAN_SQL
TIMED_MEASURES = metrics_rollup.MEASURES


class Window:
	"""A creation window ``[since, until)`` read from stored periods and raw rows (see ``window``).

	``raw`` is a condition on `tabBackground Job` (None: nothing to read there), ``stored`` one on
	a rollup table's unqualified columns (None: nothing stored), ``jobs`` the whole window's
	condition on `tabBackground Job` (for lookups of a few rows), all with ``values``."""

	def __init__(self, since, raw: str | None, stored: str | None, jobs: str, values: dict):
		self.since, self.raw, self.stored, self.jobs, self.values = since, raw, stored, jobs, values


def window(
	since,
	until=None,
	*,
	organization: str | None = None,
	job_type: str | None = None,
	days: bool = True,
	now=None,
) -> Window:
	"""The window's plan: stored hours (and days, unless ``days`` is False) from the rollups,
	raw ranges for the rest, each restricted to the caller's scope and the filters."""
	now = now or now_datetime()
	values: dict = {"since": since}
	filters = _filters(organization, job_type, values)
	first, last = metrics_segments.whole_hours(since, until, now)
	stored_hours, stored_days = [], []
	if first < last:
		period_values = {"first": first, "last": last, "last_day": last - metrics_segments.DAY}
		if days:
			stored_days = frappe.db.sql_list(
				f"""SELECT period_start FROM `tab{metrics_rollup.PERIOD_TABLE}`
				WHERE period = 'Day' AND period_start >= %(first)s AND period_start <= %(last_day)s
					AND computed_at IS NOT NULL""",
				period_values,
			)
		# The hours of stored days are not needed (nor read: a month holds ~700 of them).
		period_values["days"] = tuple(day.date() for day in stored_days)
		stored_hours = frappe.db.sql_list(
			f"""SELECT period_start FROM `tab{metrics_rollup.PERIOD_TABLE}`
			WHERE period = 'Hour' AND period_start >= %(first)s AND period_start < %(last)s
				AND computed_at IS NOT NULL {"AND DATE(period_start) NOT IN %(days)s" if stored_days else ""}""",
			period_values,
		)
	plan = metrics_segments.plan(since, until, now, stored_hours, stored_days)

	scope = background_job_query()
	whole = ["creation >= %(since)s", *filters, *([f"({scope})"] if scope else [])]
	if until is not None:
		values["until"] = until
		whole.append("creation < %(until)s")
	raw = None
	if plan.raw:
		ranges = []
		for i, (start, end) in enumerate(plan.raw):
			values[f"raw_start_{i}"] = start
			if end is None:
				ranges.append(f"creation >= %(raw_start_{i})s")
			else:
				values[f"raw_end_{i}"] = end
				ranges.append(f"(creation >= %(raw_start_{i})s AND creation < %(raw_end_{i})s)")
		raw = " AND ".join([f"({' OR '.join(ranges)})", *filters, *([f"({scope})"] if scope else [])])

	stored = None
	if plan.hours or plan.days:
		periods = []
		if plan.days:
			values["stored_days"] = tuple(plan.days)
			periods.append("(period = 'Day' AND period_start IN %(stored_days)s)")
		if plan.hours:
			values["stored_hours"] = tuple(plan.hours)
			periods.append("(period = 'Hour' AND period_start IN %(stored_hours)s)")
		stored_conditions = [f"({' OR '.join(periods)})", *filters]
		if rollup_scope := organization_scope("`organization`"):
			stored_conditions.append(f"({rollup_scope})")
		stored = " AND ".join(stored_conditions)
	return Window(since, raw, stored, " AND ".join(whole), values)


COUNT_KEYS = ("job_type", "status", "queue", "priority")


def window_counts(
	win: Window, keys: tuple[str, ...] = COUNT_KEYS, hourly: bool = False, attempts: bool = False
) -> list:
	"""Per ``keys`` (and per creation hour, ``"%Y-%m-%d %H:00"``, when ``hourly``): jobs, finished,
	ran, run_total and wait_total over the window, in one query; with ``attempts``, also attempts
	and last_finished_at (the raw rows are then read from the table, not the covering index)."""
	stored_keys, raw_keys = list(keys), list(keys)
	if hourly:
		stored_keys.append("DATE_FORMAT(period_start, '%%Y-%%m-%%d %%H:00') AS hour")
		raw_keys.append("DATE_FORMAT(creation, '%%Y-%%m-%%d %%H:00') AS hour")
	group = ", ".join([*keys, *(["hour"] if hourly else [])])
	parts = []
	if win.stored:
		parts.append(
			f"""SELECT {", ".join(stored_keys)}, jobs, finished, ran, attempts, run_total, wait_total,
				last_finished_at
			FROM `tab{metrics_rollup.COUNT_TABLE}` WHERE {win.stored}"""
		)
	if win.raw:
		parts.append(
			f"""SELECT {", ".join(raw_keys)}, COUNT(*) AS jobs,
				SUM(finished_at IS NOT NULL AND finished_at >= %(since)s) AS finished,
				SUM({RAN_SQL}) AS ran, {"SUM(attempt)" if attempts else "0"} AS attempts,
				SUM(CASE WHEN {RAN_SQL} THEN run_time END) AS run_total,
				SUM(CASE WHEN {RAN_SQL} THEN wait_time END) AS wait_total,
				{"MAX(finished_at)" if attempts else "NULL"} AS last_finished_at
			FROM `tabBackground Job` WHERE {win.raw} GROUP BY {group}"""
		)
	if not parts:
		return []
	return frappe.db.sql(
		f"""SELECT {group}, SUM(jobs) AS jobs, SUM(finished) AS finished, SUM(ran) AS ran,
			SUM(attempts) AS attempts, SUM(run_total) AS run_total, SUM(wait_total) AS wait_total,
			MAX(last_finished_at) AS last_finished_at
		FROM ({" UNION ALL ".join(parts)}) parts GROUP BY {group}""",
		win.values,
		as_dict=True,
	)


def type_percentiles(
	where: str | None = None,
	values: dict | None = None,
	measures: tuple[str, ...] = TIMED_MEASURES,
	*,
	window: Window | None = None,
) -> dict[str, dict[str, float | None]]:
	"""p50 / p95 of run and wait time per job type (``{job_type: {"run_p50": ...}}``) of the jobs
	that ran, from log-scale histograms: the jobs of ``where`` (a condition on the jobs), or a
	``window``'s stored histograms and raw rows, summed per bucket in one query; ``metrics_math``
	turns bucket counts into percentiles. The engine's only percentile: the API metrics, the
	workspace chart, health and the Job Type Health report all read it."""
	unknown = set(measures) - set(TIMED_MEASURES)
	if unknown or not measures:
		raise ValueError(f"measures must be among {TIMED_MEASURES}, not {measures}")
	if window is not None:
		where, stored, values = window.raw, window.stored, dict(window.values)
	else:
		stored, values = None, dict(values or {})
	parts = [
		f"""SELECT '{measure}' AS measure, job_type, {metrics_math.bucket_sql(measure)} AS bucket, COUNT(*) AS jobs
		FROM `tabBackground Job` WHERE {where} AND {RAN_SQL} GROUP BY job_type, bucket"""
		for measure in measures
		if where
	]
	if stored:
		values["__measures"] = tuple(measures)
		parts.append(
			f"""SELECT measure, job_type, bucket, SUM(jobs) AS jobs FROM `tab{metrics_rollup.HISTOGRAM_TABLE}`
			WHERE {stored} AND measure IN %(__measures)s GROUP BY measure, job_type, bucket"""
		)
	if not parts:
		return {}
	rows = frappe.db.sql(
		f"""SELECT measure, job_type, bucket, SUM(jobs) FROM ({" UNION ALL ".join(parts)}) parts
		GROUP BY measure, job_type, bucket""",
		values,
	)
	histograms: dict[str, dict[str, dict[int, int]]] = {}
	for measure, job_type, bucket, count in rows:
		histograms.setdefault(job_type, {}).setdefault(measure, {})[int(bucket)] = int(count)
	return {
		job_type: {
			f"{measure.split('_')[0]}_{name}": metrics_math.percentile(counts, fraction)
			for measure, counts in by_measure.items()
			for name, fraction in (("p50", 0.5), ("p95", 0.95))
		}
		for job_type, by_measure in histograms.items()
	}
