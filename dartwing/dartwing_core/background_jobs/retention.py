"""Retention: ended jobs older than their job type's retention are deleted with everything theirs.

Contract: ``purge_expired(now=None, batch_size=None, time_budget_seconds=50)`` deletes terminal
jobs whose ``finished_at`` is older than the job type's ``retention_days`` (0 or empty: the
settings' ``retention_days``, default 30), together with their Job Execution Log rows and
dependency rows, in batches of ``batch_size`` (settings' ``retention_batch_size``), one commit per
batch, until nothing is left or the time budget is spent. A job that an active job still depends
on is kept. Returns ``{"jobs", "logs", "batches", "complete"}``.

Log Settings keeps clearing the logs of ended jobs on its own schedule too (``clear_old_logs``).
"""

import time
from datetime import datetime

import frappe
from frappe.utils import cint, now_datetime

from dartwing.dartwing_core.background_jobs import metrics_rollup, states
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger
from dartwing.dartwing_core.background_jobs.settings import get_settings


def _expired_batch(now: datetime, default_days: int, batch_size: int) -> list[str]:
	return frappe.db.sql_list(
		"""SELECT job.name FROM `tabBackground Job` job
		JOIN `tabJob Type` job_type ON job_type.name = job.job_type
		WHERE job.status IN %(terminal)s
			AND job.finished_at < %(now)s - INTERVAL COALESCE(NULLIF(job_type.retention_days, 0), %(default_days)s) DAY
			AND NOT EXISTS (
				SELECT 1 FROM `tabBackground Job Dependency` dependency
				JOIN `tabBackground Job` child ON child.name = dependency.parent
				WHERE dependency.depends_on = job.name AND child.status IN %(active)s
			)
		ORDER BY job.finished_at
		LIMIT %(batch_size)s""",
		{
			"terminal": tuple(states.TERMINAL),
			"active": tuple(states.ACTIVE),
			"now": now,
			"default_days": default_days,
			"batch_size": batch_size,
		},
	)


def delete_jobs(names: list[str]) -> int:
	"""Delete jobs with their logs and dependency rows; returns how many log rows went. Their
	hours in the metrics rollups are marked for recomputing (``metrics_rollup``)."""
	if not names:
		return 0
	names = tuple(names)
	metrics_rollup.mark_jobs_dirty("name IN %(names)s", {"names": names})
	frappe.db.sql("DELETE FROM `tabJob Execution Log` WHERE job IN %s", (names,))
	logs = frappe.db._cursor.rowcount
	frappe.db.sql(
		"DELETE FROM `tabBackground Job Dependency` WHERE parent IN %s OR depends_on IN %s", (names, names)
	)
	frappe.db.sql("DELETE FROM `tabBackground Job` WHERE name IN %s", (names,))
	return logs


def purge_expired(
	now: datetime | None = None, batch_size: int | None = None, time_budget_seconds: float = 50
) -> dict:
	settings = get_settings()
	now = now or now_datetime()
	batch_size = cint(batch_size) or settings.retention_batch_size
	deadline = time.monotonic() + time_budget_seconds
	totals = {"jobs": 0, "logs": 0, "batches": 0, "complete": False}
	while time.monotonic() < deadline:
		names = _expired_batch(now, settings.retention_days, batch_size)
		if not names:
			totals["complete"] = True
			break
		totals["logs"] += delete_jobs(names)
		totals["jobs"] += len(names)
		totals["batches"] += 1
		frappe.db.commit()
	jobs_logger().info({"event": "retention", **totals})
	return totals
