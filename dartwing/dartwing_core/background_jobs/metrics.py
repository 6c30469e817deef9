"""Metrics and queue statistics, computed by SQL aggregates only (no Python loops over rows).

Contract:
- ``job_metrics(organization=None, job_type=None, since=None)`` returns, for jobs created since
  ``since`` (default: the last 24 hours): counts by status, queue depth by priority (jobs not yet
  running), wait and run time avg/p50/p95 (percentiles within ``metrics_math.ACCURACY``, about
  2.5%) and failure rate per job type, throughput (jobs finished per minute over the window) and
  active workers (for a non-manager, only workers busy with their organizations' jobs); for
  managers, the latest queue health signals (``health``). Non-managers see only their
  organizations; asking for another organization raises ``PermissionError``.
- Every figure over a creation window is read through ``metrics_window`` (stored rollup periods
  plus raw rows, merged in SQL), as the workspace charts and the Job Type Health report read it.
- ``queue_stats(since=None)`` returns, per queue and job type, how many jobs are waiting, active,
  delayed and retrying now, how many failed and completed since ``since`` (default 24 hours),
  ``handed_back``: how many of those jobs (active now, or ended since ``since``) were handed back
  at least once without counting an attempt (a restart, a worker that died; ``restarts``), and
  ``recoveries``: how many times in all,
  and whether that queue or type is paused (both halves read small index ranges); ``upkeep``:
  the upkeep runner's and Frappe scheduler's state with their warnings (``upkeep.liveness``); and
  ``organizations``: who uses the queues (``organization_usage``).
- ``organization_usage(top)``: per organization, its jobs Queued and Running now and how long its
  oldest Queued job has waited (seconds); the ``top`` organizations by Queued then Running jobs,
  the rest summed as ``other`` (a bounded list, also for Prometheus' labels).
- ``prometheus_text()`` renders the finished-job counters and run-time histogram
  (``job_counters``), the queue and worker gauges, and the upkeep gauges
  (``dartwing_upkeep_last_pass_age_seconds``, ``dartwing_upkeep_alive``,
  ``dartwing_scheduler_active``), and per organization (``organization_usage``: the top
  ``TOP_ORGANIZATIONS`` and ``other``) ``dartwing_organization_jobs`` and
  ``dartwing_organization_oldest_wait_seconds``, in the Prometheus text format.
"""

from datetime import timedelta

import frappe
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import clock, health, job_counters, states, upkeep
from dartwing.dartwing_core.background_jobs.metrics_window import (
	TIMED_MEASURES,
	type_percentiles,
	window,
	window_counts,
)
from dartwing.dartwing_core.background_jobs.permissions import background_job_query, is_manager
from dartwing.dartwing_core.background_jobs.settings import get_settings, paused_job_types, paused_queues

DEFAULT_WINDOW = timedelta(hours=24)
TOP_ORGANIZATIONS = 20
OTHER_ORGANIZATIONS = "other"


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
		"health": health.latest() if is_manager() else None,
	}


def _timing(avg, p50, p95) -> dict:
	return {
		key: (round(float(v), 4) if v is not None else None)
		for key, v in (("avg", avg), ("p50", p50), ("p95", p95))
	}


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
			0 AS failed, 0 AS completed,
			SUM(recoveries > 0) AS handed_back, SUM(recoveries) AS recoveries
		FROM `tabBackground Job` WHERE status IN %(active)s GROUP BY queue, job_type
		UNION ALL
		SELECT queue, job_type, 0, 0, 0, 0, SUM(status IN %(failed)s), SUM(status = 'Completed'),
			SUM(recoveries > 0), SUM(recoveries)
		FROM `tabBackground Job` WHERE status IN %(ended)s
			AND finished_at >= %(since)s
		GROUP BY queue, job_type""",
		values,
		as_dict=True,
	)
	queues, types = paused_queues(), paused_job_types()
	counters = (
		"waiting",
		"active",
		"delayed",
		"retrying",
		"failed",
		"completed",
		"handed_back",
		"recoveries",
	)
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
		"organizations": organization_usage(),
	}


def organization_usage(top: int = TOP_ORGANIZATIONS) -> list[dict]:
	"""Queued and Running jobs and the oldest Queued job's wait, per organization (see contract)."""
	rows = frappe.db.sql(
		"""SELECT organization, SUM(status = 'Queued') AS queued, SUM(status = 'Running') AS running,
			MIN(IF(status = 'Queued', queued_at, NULL)) AS oldest_queued_at
		FROM `tabBackground Job` WHERE status IN ('Queued', 'Running')
		GROUP BY organization ORDER BY queued DESC, running DESC, organization""",
		as_dict=True,
	)
	now = now_datetime()
	usage = [
		{
			"organization": row.organization,
			"queued": int(row.queued),
			"running": int(row.running),
			"oldest_wait_seconds": round((now - row.oldest_queued_at).total_seconds(), 3)
			if row.oldest_queued_at
			else None,
		}
		for row in rows
	]
	if len(usage) <= top:
		return usage
	rest = usage[top:]
	waits = [entry["oldest_wait_seconds"] for entry in rest if entry["oldest_wait_seconds"] is not None]
	return [
		*usage[:top],
		{
			"organization": OTHER_ORGANIZATIONS,
			"queued": sum(entry["queued"] for entry in rest),
			"running": sum(entry["running"] for entry in rest),
			"oldest_wait_seconds": max(waits) if waits else None,
		},
	]


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

			by_organization = GaugeMetricFamily(
				"dartwing_organization_jobs",
				f"Jobs Queued and Running, by organization (the top {TOP_ORGANIZATIONS}, then other)",
				labels=["organization", "status"],
			)
			oldest_wait = GaugeMetricFamily(
				"dartwing_organization_oldest_wait_seconds",
				"How long the organization's oldest Queued job has waited",
				labels=["organization"],
			)
			for entry in organization_usage():
				by_organization.add_metric([entry["organization"] or "", states.QUEUED], entry["queued"])
				by_organization.add_metric([entry["organization"] or "", states.RUNNING], entry["running"])
				if entry["oldest_wait_seconds"] is not None:
					oldest_wait.add_metric([entry["organization"] or ""], entry["oldest_wait_seconds"])
			yield by_organization
			yield oldest_wait

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
