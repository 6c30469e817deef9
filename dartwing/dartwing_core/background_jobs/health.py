"""Queue health: signals that work is stuck or slow, from SQL aggregates.

Contract: ``check(now=None)`` returns the signals below; the ``dartwing_queue_health`` job type
runs it on a schedule, so its latest result (``latest()``) is what metrics show.
- ``stuck_queued``: Queued jobs waiting longer than ``stuck_after_seconds`` (default 300);
- ``stale_running``: Running jobs whose heartbeat is older than the settings' stale limit
  (the reaper recovers them; many of them means workers keep dying);
- ``overdue_retries``: Retrying jobs whose ``next_retry_at`` passed over two minutes ago;
- ``oldest_queued_seconds`` per queue;
- ``slow_job_types``: types whose p95 run time over the last hour exceeds 80% of their timeout.
"""

from datetime import datetime, timedelta

import frappe
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import clock, metrics_window, states
from dartwing.dartwing_core.background_jobs.settings import get_settings

HEALTH_JOB_TYPE = "dartwing_queue_health"
STUCK_AFTER_SECONDS = 300
SLOW_SHARE_OF_TIMEOUT = 0.8


def _count(condition: str, values: dict) -> int:
	return int(frappe.db.sql(f"SELECT COUNT(*) FROM `tabBackground Job` WHERE {condition}", values)[0][0])


def check(now: datetime | None = None, stuck_after_seconds: int = STUCK_AFTER_SECONDS) -> dict:
	now = now or now_datetime()
	now_utc = clock.site_to_utc(now)
	values = {
		"stuck_before": now - timedelta(seconds=stuck_after_seconds),
		"stale_before": now_utc - timedelta(seconds=get_settings().stale_heartbeat_seconds),
		"overdue_before": now_utc - timedelta(minutes=2),
		"hour_ago": now - timedelta(hours=1),
		"now": now,
	}
	oldest = frappe.db.sql(
		"""SELECT queue, TIMESTAMPDIFF(SECOND, MIN(queued_at), %(now)s) FROM `tabBackground Job`
		WHERE status = 'Queued' GROUP BY queue ORDER BY queue""",
		values,
	)
	recent = "status IN %(ended_or_retrying)s AND finished_at >= %(hour_ago)s"
	values["ended_or_retrying"] = (*states.TERMINAL, states.RETRYING)
	percentiles = metrics_window.type_percentiles(recent, values)
	timeouts = dict(
		frappe.db.sql(
			f"SELECT job_type, MAX(timeout_seconds) FROM `tabBackground Job` WHERE {recent} GROUP BY job_type",
			values,
		)
	)
	return {
		"checked_at": str(now),
		"stuck_queued": _count("status = 'Queued' AND queued_at < %(stuck_before)s", values),
		"stale_running": _count("status = 'Running' AND heartbeat_utc < %(stale_before)s", values),
		"overdue_retries": _count("status = 'Retrying' AND next_retry_utc < %(overdue_before)s", values),
		"oldest_queued_seconds": {queue: int(age) for queue, age in oldest},
		"slow_job_types": [
			{"job_type": job_type, "p95_seconds": round(p95, 3), "timeout_seconds": int(timeouts[job_type])}
			for job_type, timing in percentiles.items()
			if (p95 := timing.get("run_p95")) is not None
			and timeouts.get(job_type)
			and p95 > SLOW_SHARE_OF_TIMEOUT * int(timeouts[job_type])
		],
	}


def latest() -> dict | None:
	"""The result of the most recent completed health check job, if any."""
	rows = frappe.db.sql(
		"""SELECT result FROM `tabBackground Job` WHERE job_type = %s AND status = 'Completed'
		ORDER BY finished_at DESC LIMIT 1""",
		HEALTH_JOB_TYPE,
	)
	return frappe.parse_json(rows[0][0]) if rows and rows[0][0] else None
