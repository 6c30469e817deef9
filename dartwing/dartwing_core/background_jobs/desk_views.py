"""Read models of the Desk: workspace cards and charts, and a document's jobs.

Contract:
- Every figure is a SQL aggregate over ``tabBackground Job`` restricted by the same rule as the
  Desk list (``permissions.background_job_query``): managers see every job, everyone else the
  jobs of their organizations.
- ``failed_since(since)``: how many jobs ended in ``states.FAILED_STATUSES`` since then.
- ``jobs_per_hour(now)``: jobs created in each of the 24 hours up to ``now``, in the series of
  ``HOURLY_SERIES`` (Waiting: Pending or Queued; Failed: ``states.FAILED_STATUSES``).
- ``run_time_by_job_type(since)``: average and p95 run time per job type of the jobs created
  since then that ran; the p95 is ``metrics_window.type_percentiles``, the one percentile of the engine.
- Both read a creation window (``metrics_window.window``): the hours the metrics rollups hold and the
  jobs themselves for the rest, so they cost the same at any table size.
- ``reference_jobs(doctype, name, limit)``: the latest jobs whose reference is that document and
  their counts by status; nothing (not an error) for a document the user cannot read.
"""

from datetime import datetime, timedelta

import frappe
from frappe import _
from frappe.utils import cint

from dartwing.dartwing_core.background_jobs import metrics_window, states
from dartwing.dartwing_core.background_jobs.permissions import background_job_query

MAX_REFERENCE_JOBS = 50
# The hourly chart's series (its Dashboard Chart gives them colours in this order).
HOURLY_SERIES = (
	("Waiting", (states.PENDING, states.QUEUED)),
	("Running", (states.RUNNING,)),
	("Retrying", (states.RETRYING,)),
	("Completed", (states.COMPLETED,)),
	("Failed", states.FAILED_STATUSES),
	("Canceled", (states.CANCELED,)),
)


def _scope() -> str:
	"""SQL condition on `tabBackground Job` limiting rows to what the session user may read."""
	condition = background_job_query()
	return f"({condition})" if condition else "1 = 1"


def failed_since(since: datetime) -> int:
	return cint(
		frappe.db.sql(
			f"""SELECT COUNT(*) FROM `tabBackground Job`
			WHERE status IN %(failed)s AND finished_at >= %(since)s AND {_scope()}""",
			{"failed": states.FAILED_STATUSES, "since": since},
		)[0][0]
	)


def jobs_per_hour(now: datetime) -> dict:
	first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
	# Hours, never days: each hour is a bar of its own.
	rows = metrics_window.window_counts(
		metrics_window.window(first_hour, days=False, now=now), keys=("status",), hourly=True
	)
	hours = [(first_hour + timedelta(hours=i)).strftime("%Y-%m-%d %H:00") for i in range(24)]
	position = {hour: i for i, hour in enumerate(hours)}
	series_of = {status: label for label, statuses in HOURLY_SERIES for status in statuses}
	series = {label: [0] * len(hours) for label, _statuses in HOURLY_SERIES}
	for row in rows:  # at most 24 x 9 aggregated rows
		if row.hour in position and row.status in series_of:
			series[series_of[row.status]][position[row.hour]] += cint(row.jobs)
	return {
		"labels": [hour[11:] for hour in hours],
		"datasets": [{"name": _(label), "values": series[label]} for label, _statuses in HOURLY_SERIES],
	}


def run_time_by_job_type(since: datetime) -> list[frappe._dict]:
	"""``[{job_type, avg, p95}]``, slowest average first."""
	win = metrics_window.window(since)
	totals = metrics_window.window_counts(win, keys=("job_type",))
	percentiles = metrics_window.type_percentiles(measures=("run_time",), window=win)
	rows = [
		frappe._dict(
			job_type=row.job_type,
			avg=float(row.run_total or 0) / int(row.ran),
			p95=percentiles.get(row.job_type, {}).get("run_p95"),
		)
		for row in totals
		if row.ran
	]
	return sorted(rows, key=lambda row: (-row.avg, row.job_type))


def reference_jobs(reference_doctype: str, reference_name: str, limit: int) -> dict:
	limit = min(max(cint(limit), 1), MAX_REFERENCE_JOBS)
	empty = {"jobs": [], "total": 0, "counts_by_status": {}}
	if not frappe.db.exists("DocType", reference_doctype) or not frappe.db.exists(
		reference_doctype, reference_name
	):
		return empty
	try:
		if not frappe.has_permission(reference_doctype, "read", reference_name):
			return empty
	except frappe.DoesNotExistError:  # someone else's tenant row fails to load, like a missing one
		frappe.clear_last_message()
		return empty
	values = {"doctype": reference_doctype, "name": reference_name}
	where = f"reference_doctype = %(doctype)s AND reference_name = %(name)s AND {_scope()}"
	counts = frappe.db.sql(
		f"SELECT status, COUNT(*) FROM `tabBackground Job` WHERE {where} GROUP BY status", values
	)
	jobs = frappe.db.sql(
		f"""SELECT name, job_type, status, progress_percent, progress_message, creation, finished_at
		FROM `tabBackground Job` WHERE {where}
		ORDER BY creation DESC, name DESC LIMIT {limit}""",
		values,
		as_dict=True,
	)
	by_status = {status: cint(count) for status, count in counts}
	return {"jobs": jobs, "total": sum(by_status.values()), "counts_by_status": by_status}
