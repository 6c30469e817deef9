"""Metrics and queue statistics, computed by SQL aggregates only (no Python loops over rows).

Contract:
- ``job_metrics(organization=None, job_type=None, since=None)`` returns, for jobs created since
  ``since`` (default: the last 24 hours): counts by status, queue depth by priority (jobs not yet
  running), wait and run time avg/p50/p95 and failure rate per job type, throughput (jobs
  finished per minute over the window) and active workers. Non-managers see only their
  organizations; asking for another organization raises ``PermissionError``.
- ``queue_stats()`` returns, per queue and job type, how many jobs are waiting, active, delayed,
  retrying, failed, completed, and whether that queue or type is paused.
- ``prometheus_text()`` renders the engine's counters, run-time histogram and gauges in the
  Prometheus text format.
"""

from datetime import timedelta

import frappe
from frappe import _
from frappe.utils import get_datetime, now_datetime

from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.permissions import is_manager, user_organizations
from dartwing.dartwing_core.background_jobs.settings import get_settings, paused_job_types, paused_queues

DEFAULT_WINDOW = timedelta(hours=24)
FAILED_STATUSES = (states.FAILED, states.TIMED_OUT, states.DEAD_LETTER)
# Run-time histogram buckets in seconds, shared by the Prometheus endpoint.
RUN_TIME_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)


def _scope(organization: str | None, job_type: str | None, since) -> tuple[str, dict, object]:
	"""WHERE clause and values restricting jobs to what the caller may see."""
	try:
		since_dt = get_datetime(since) if since else now_datetime() - DEFAULT_WINDOW
	except Exception:
		frappe.throw(_("since {0} is not a date").format(since))
	conditions, values = ["creation >= %(since)s"], {"since": since_dt}
	if job_type:
		conditions.append("job_type = %(job_type)s")
		values["job_type"] = job_type
	if is_manager():
		if organization:
			conditions.append("organization = %(organization)s")
			values["organization"] = organization
	else:
		allowed = user_organizations()
		if organization and organization not in allowed:
			raise frappe.PermissionError(_("You are not a member of organization {0}").format(organization))
		allowed = [organization] if organization else allowed
		if allowed:
			conditions.append("organization IN %(organizations)s")
			values["organizations"] = tuple(allowed)
		else:
			conditions.append("1 = 0")
	return " AND ".join(conditions), values, since_dt


def _per_type_timings(where: str, values: dict) -> dict[str, dict]:
	"""avg/p50/p95 of wait and run time per job type, with MariaDB's PERCENTILE_CONT."""
	rows = frappe.db.sql(
		f"""SELECT DISTINCT job_type,
			PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY run_time) OVER (PARTITION BY job_type) AS run_p50,
			PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY run_time) OVER (PARTITION BY job_type) AS run_p95,
			PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY wait_time) OVER (PARTITION BY job_type) AS wait_p50,
			PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY wait_time) OVER (PARTITION BY job_type) AS wait_p95
		FROM `tabBackground Job`
		WHERE {where} AND started_at IS NOT NULL AND finished_at IS NOT NULL""",
		values,
		as_dict=True,
	)
	return {row.job_type: row for row in rows}


def job_metrics(organization: str | None = None, job_type: str | None = None, since=None) -> dict:
	where, values, since_dt = _scope(organization, job_type, since)
	values["failed"] = FAILED_STATUSES
	# One pass over the window, grouped finely enough for every count; the percentiles take a second.
	groups = frappe.db.sql(
		f"""SELECT job_type, status, queue, priority,
			COUNT(*) AS jobs,
			SUM(finished_at IS NOT NULL AND finished_at >= %(since)s) AS finished,
			SUM(started_at IS NOT NULL AND finished_at IS NOT NULL) AS ran,
			SUM(CASE WHEN started_at IS NOT NULL AND finished_at IS NOT NULL THEN run_time END) AS run_total,
			SUM(CASE WHEN started_at IS NOT NULL AND finished_at IS NOT NULL THEN wait_time END) AS wait_total
		FROM `tabBackground Job` WHERE {where}
		GROUP BY job_type, status, queue, priority""",
		values,
		as_dict=True,
	)
	timings = _per_type_timings(where, values)
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
		totals["failed"] += jobs if group.status in FAILED_STATUSES else 0
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
		"workers": active_workers(),
	}


def _timing(avg, p50, p95) -> dict:
	return {
		key: (round(float(v), 4) if v is not None else None)
		for key, v in (("avg", avg), ("p50", p50), ("p95", p95))
	}


def active_workers() -> dict:
	"""RQ workers registered for this bench, and how many are running a job of this site."""
	from frappe.utils.background_jobs import get_workers

	try:
		registered = len(get_workers())
	except Exception:
		registered = None
	stale_after = now_datetime() - timedelta(seconds=get_settings().stale_heartbeat_seconds)
	busy = frappe.db.sql(
		"""SELECT COUNT(DISTINCT worker) FROM `tabBackground Job`
		WHERE status = 'Running' AND heartbeat >= %s""",
		stale_after,
	)[0][0]
	return {"registered": registered, "busy": int(busy)}


def queue_stats() -> dict:
	now = now_datetime()
	rows = frappe.db.sql(
		"""SELECT queue, job_type,
			SUM(status = 'Queued' OR (status = 'Pending' AND (run_at IS NULL OR run_at <= %(now)s))) AS waiting,
			SUM(status = 'Running') AS active,
			SUM(status = 'Pending' AND run_at > %(now)s) AS `delayed`,
			SUM(status = 'Retrying') AS retrying,
			SUM(status IN %(failed)s) AS failed,
			SUM(status = 'Completed') AS completed
		FROM `tabBackground Job` GROUP BY queue, job_type ORDER BY queue, job_type""",
		{"now": now, "failed": FAILED_STATUSES},
		as_dict=True,
	)
	queues, types = paused_queues(), paused_job_types()
	counters = ("waiting", "active", "delayed", "retrying", "failed", "completed")
	return {
		"queues": [
			{
				"queue": row.queue,
				"job_type": row.job_type,
				**{key: int(row[key] or 0) for key in counters},
				"paused": row.queue in queues or row.job_type in types,
			}
			for row in rows
		],
		"paused_queues": sorted(queues),
		"paused_job_types": sorted(types),
	}


def prometheus_text() -> bytes:
	"""The engine's state in the Prometheus text exposition format, from SQL aggregates."""
	from prometheus_client import CollectorRegistry, generate_latest
	from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

	class EngineCollector:
		def collect(self):
			finished = CounterMetricFamily(
				"dartwing_jobs_finished", "Jobs that reached a terminal status", labels=["job_type", "status"]
			)
			for job_type, status, count in frappe.db.sql(
				"""SELECT job_type, status, COUNT(*) FROM `tabBackground Job`
				WHERE status IN %s GROUP BY job_type, status""",
				(tuple(states.TERMINAL),),
			):
				finished.add_metric([job_type, status], count)
			yield finished

			bucket_sums = ", ".join(f"SUM(run_time <= {bound})" for bound in RUN_TIME_BUCKETS)
			histogram = HistogramMetricFamily(
				"dartwing_job_run_seconds", "Run time of finished jobs", labels=["job_type"]
			)
			for row in frappe.db.sql(
				f"""SELECT job_type, COUNT(*), COALESCE(SUM(run_time), 0), {bucket_sums}
				FROM `tabBackground Job` WHERE started_at IS NOT NULL AND finished_at IS NOT NULL
				GROUP BY job_type"""
			):
				job_type, count, total, cumulative = row[0], int(row[1]), float(row[2]), row[3:]
				buckets = [
					(str(bound), int(n or 0)) for bound, n in zip(RUN_TIME_BUCKETS, cumulative, strict=True)
				]
				buckets.append(("+Inf", count))
				histogram.add_metric([job_type], buckets, total)
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

	registry = CollectorRegistry(auto_describe=False)
	registry.register(EngineCollector())
	return generate_latest(registry)
