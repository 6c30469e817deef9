"""Metrics and queue statistics, computed by SQL aggregates only (no Python loops over rows).

Contract:
- ``job_metrics(organization=None, job_type=None, since=None)`` returns, for jobs created since
  ``since`` (default: the last 24 hours): counts by status, queue depth by priority (jobs not yet
  running), wait and run time avg/p50/p95 (percentiles within ``metrics_math.ACCURACY``, about
  2.5%) and failure rate per job type, throughput (jobs finished per minute over the window) and
  active workers (for a non-manager, only workers busy with their organizations' jobs); for
  managers, the latest queue health signals (``health``). Non-managers see only their
  organizations; asking for another organization raises ``PermissionError``.
- ``window(since, until=None, ...)`` is how every figure over a creation window is read: the
  whole hours and days the rollups hold (``metrics_rollup``; periods marked computed only) plus
  the jobs themselves for the rest (``metrics_segments.plan``: the head before the first hour
  boundary, the current hour, any period not stored), merged in SQL (``UNION ALL`` and
  ``GROUP BY``). Stored periods are at most one upkeep minute behind the jobs. The organization,
  job type and the caller's scope apply to both sides. ``window_counts`` and
  ``type_percentiles(window=...)`` read it; so do the workspace charts and the Job Type Health
  report. A job counts as finished in a stored period when it has ``finished_at`` (it finished
  after it was created, so after ``since``).
- ``queue_stats(since=None)`` returns, per queue and job type, how many jobs are waiting, active,
  delayed and retrying now, how many failed and completed since ``since`` (default 24 hours),
  and whether that queue or type is paused (both halves read small index ranges); and ``upkeep``:
  the upkeep runner's and Frappe scheduler's state with their warnings (``upkeep.liveness``).
- ``prometheus_text()`` renders the finished-job counters and run-time histogram
  (``job_counters``), the queue and worker gauges, and the upkeep gauges
  (``dartwing_upkeep_last_pass_age_seconds``, ``dartwing_upkeep_alive``,
  ``dartwing_scheduler_active``) in the Prometheus text format.
"""

from datetime import timedelta

import frappe
from frappe import _
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import (
	clock,
	job_counters,
	metrics_math,
	metrics_rollup,
	metrics_segments,
	states,
	upkeep,
)
from dartwing.dartwing_core.background_jobs.permissions import (
	background_job_query,
	can_read_job,
	is_manager,
	organization_scope,
)
from dartwing.dartwing_core.background_jobs.settings import get_settings, paused_job_types, paused_queues

DEFAULT_WINDOW = timedelta(hours=24)


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


def job_metrics(organization: str | None = None, job_type: str | None = None, since=None) -> dict:
	since_dt = clock.parse_site_datetime(since, "since") or now_datetime() - DEFAULT_WINDOW
	win = window(since_dt, organization=organization, job_type=job_type)
	# One read of the window, grouped finely enough for every count; the percentiles take a second.
	groups = window_counts(win)
	timings = type_percentiles(measures=TIMED_MEASURES, window=win)
	minutes = max((now_datetime() - since_dt).total_seconds() / 60, 1 / 60)

	by_status = dict.fromkeys(states.STATUSES, 0)
	depth: dict[tuple[str, str], int] = {}
	per_type: dict[str, dict] = {}
	for group in groups:
		jobs = int(group.jobs)
		by_status[group.status] = by_status.get(group.status, 0) + jobs
		if group.status in (states.PENDING, states.QUEUED):
			depth[(group.queue, group.priority)] = depth.get((group.queue, group.priority), 0) + jobs
		totals = per_type.setdefault(
			group.job_type, {"jobs": 0, "completed": 0, "failed": 0, "ran": 0, "run": 0.0, "wait": 0.0}
		)
		totals["jobs"] += jobs
		totals["completed"] += jobs if group.status == states.COMPLETED else 0
		totals["failed"] += jobs if group.status in states.FAILED_STATUSES else 0
		totals["ran"] += int(group.ran or 0)
		totals["run"] += float(group.run_total or 0)
		totals["wait"] += float(group.wait_total or 0)
	finished = sum(int(group.finished or 0) for group in groups)

	job_types = []
	for name in sorted(per_type):
		totals, timing = per_type[name], timings.get(name, {})
		ended = totals["completed"] + totals["failed"]
		ran = totals["ran"]
		job_types.append(
			{
				"job_type": name,
				"jobs": totals["jobs"],
				"completed": totals["completed"],
				"failed": totals["failed"],
				"failure_rate": round(totals["failed"] / ended, 4) if ended else 0.0,
				"run_time": _timing(
					totals["run"] / ran if ran else None, timing.get("run_p50"), timing.get("run_p95")
				),
				"wait_time": _timing(
					totals["wait"] / ran if ran else None, timing.get("wait_p50"), timing.get("wait_p95")
				),
			}
		)
	return {
		"since": since_dt,
		"organization": organization,
		"job_type": job_type,
		"counts_by_status": by_status,
		"queue_depth": [
			{"queue": queue, "priority": priority, "jobs": jobs}
			for (queue, priority), jobs in sorted(depth.items())
		],
		"job_types": job_types,
		"throughput_per_minute": round(finished / minutes, 4),
		"finished": int(finished),
		"workers": active_workers() if is_manager() else active_workers(scope=background_job_query()),
		"health": _latest_health() if is_manager() else None,
	}


def _timing(avg, p50, p95) -> dict:
	return {
		key: (round(float(v), 4) if v is not None else None)
		for key, v in (("avg", avg), ("p50", p50), ("p95", p95))
	}


def _latest_health() -> dict | None:
	from dartwing.dartwing_core.background_jobs import health

	return health.latest()


def active_workers(scope: str = "") -> dict:
	"""RQ workers alive on this bench, and how many are running a job of this site.

	With a ``scope`` (a member's organizations) only the workers running jobs in that scope are
	counted, and the bench's worker count is left out: both would tell of other tenants' work.
	"""
	from frappe.utils.background_jobs import get_redis_conn

	stale_after = clock.utc_now() - timedelta(seconds=get_settings().stale_heartbeat_seconds)
	busy = frappe.db.sql(
		f"""SELECT COUNT(DISTINCT worker) FROM `tabBackground Job`
		WHERE status = 'Running' AND heartbeat_utc >= %s {f"AND {scope}" if scope else ""}""",
		stale_after,
	)[0][0]
	if scope:
		return {"registered": None, "busy": int(busy)}
	try:
		# Each worker keeps a key of its own (gone within RQ's worker TTL after it dies); the
		# ``rq:workers`` set that get_workers() reads can lose members, e.g. in a Redis flush.
		registered = sum(1 for _ in get_redis_conn().scan_iter(match="rq:worker:*", count=1000))
	except Exception:
		registered = None
	return {"registered": registered, "busy": int(busy)}


def queue_stats(since=None) -> dict:
	"""Per queue and job type: what waits and runs now, and what ended since ``since`` (24 h)."""
	now = now_datetime()
	since = clock.parse_site_datetime(since, "since") or now - DEFAULT_WINDOW
	values = {
		"now_utc": clock.utc_now(),
		"since": since,
		"active": tuple(states.ACTIVE),
		"failed": states.FAILED_STATUSES,
		"ended": (states.COMPLETED, *states.FAILED_STATUSES),
	}
	rows = frappe.db.sql(
		"""SELECT queue, job_type,
			SUM(status = 'Queued' OR (status = 'Pending' AND (run_at_utc IS NULL OR run_at_utc <= %(now_utc)s))) AS waiting,
			SUM(status = 'Running') AS active,
			SUM(status = 'Pending' AND run_at_utc > %(now_utc)s) AS `delayed`,
			SUM(status = 'Retrying') AS retrying,
			0 AS failed, 0 AS completed
		FROM `tabBackground Job` WHERE status IN %(active)s GROUP BY queue, job_type
		UNION ALL
		SELECT queue, job_type, 0, 0, 0, 0, SUM(status IN %(failed)s), SUM(status = 'Completed')
		FROM `tabBackground Job` WHERE status IN %(ended)s
			AND finished_at >= %(since)s
		GROUP BY queue, job_type""",
		values,
		as_dict=True,
	)
	queues, types = paused_queues(), paused_job_types()
	counters = ("waiting", "active", "delayed", "retrying", "failed", "completed")
	merged: dict[tuple[str, str], dict] = {}
	for row in rows:
		entry = merged.setdefault((row.queue, row.job_type), dict.fromkeys(counters, 0))
		for key in counters:
			entry[key] += int(row[key] or 0)
	return {
		"since": since,
		"queues": [
			{"queue": queue, "job_type": job_type, **entry, "paused": queue in queues or job_type in types}
			for (queue, job_type), entry in sorted(
				merged.items(), key=lambda item: (item[0][0] or "", item[0][1])
			)
		],
		"paused_queues": sorted(queues),
		"paused_job_types": sorted(types),
		"upkeep": upkeep.liveness(),
	}


def prometheus_text() -> bytes:
	"""The engine in the Prometheus text format: finished-job counters and the run-time histogram
	(``job_counters``, from Redis), jobs not yet finished and workers (gauges, from the database)."""
	from prometheus_client import CollectorRegistry, generate_latest
	from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

	class EngineCollector:
		def collect(self):
			counters = job_counters.snapshot()
			finished = CounterMetricFamily(
				"dartwing_jobs_finished", "Jobs that reached a terminal status", labels=["job_type", "status"]
			)
			for (job_type, status), count in sorted(counters["finished"].items()):
				finished.add_metric([job_type, status], count)
			yield finished

			histogram = HistogramMetricFamily(
				"dartwing_job_run_seconds", "Run time of jobs that ran to an end", labels=["job_type"]
			)
			for job_type, run_time in sorted(counters["run_time"].items()):
				buckets = [(str(bound), count) for bound, count in sorted(run_time["buckets"].items())]
				buckets.append(("+Inf", run_time["count"]))
				histogram.add_metric([job_type], buckets, run_time["sum"])
			yield histogram

			queue_size = GaugeMetricFamily(
				"dartwing_queue_jobs",
				"Jobs not yet finished, by queue and status",
				labels=["queue", "status"],
			)
			for queue, status, count in frappe.db.sql(
				"""SELECT queue, status, COUNT(*) FROM `tabBackground Job`
				WHERE status IN %s GROUP BY queue, status""",
				(tuple(states.ACTIVE),),
			):
				queue_size.add_metric([queue or "", status], count)
			yield queue_size

			workers = active_workers()
			busy = GaugeMetricFamily("dartwing_active_workers", "Workers running a job of this site")
			busy.add_metric([], workers["busy"])
			yield busy
			if workers["registered"] is not None:
				registered = GaugeMetricFamily("dartwing_registered_workers", "RQ workers registered")
				registered.add_metric([], workers["registered"])
				yield registered

			state = upkeep.liveness()
			if state["upkeep_last_pass_age_seconds"] is not None:
				age = GaugeMetricFamily(
					"dartwing_upkeep_last_pass_age_seconds", "Seconds since the upkeep runner's last pass"
				)
				age.add_metric([], state["upkeep_last_pass_age_seconds"])
				yield age
			for name, documentation, value in (
				("dartwing_upkeep_alive", "1 if upkeep passed within its stale limit", state["upkeep_alive"]),
				(
					"dartwing_scheduler_active",
					"1 if Frappe's scheduler runs this site's events",
					state["scheduler_active"],
				),
			):
				gauge = GaugeMetricFamily(name, documentation)
				gauge.add_metric([], int(value))
				yield gauge

	registry = CollectorRegistry(auto_describe=False)
	registry.register(EngineCollector())
	return generate_latest(registry)
