"""Read models for Dartwing's Desk: workspace cards and charts, a document's jobs, the job timeline.

Contract:
- Every figure is a SQL aggregate over ``tabBackground Job`` restricted by the same rule as the
  Desk list (``permissions.background_job_query``): managers see every job, everyone else the
  jobs of their organizations.
- ``failed_last_24h`` backs the "Failed (24 h)" number card: jobs that ended Failed, Timed Out
  or Dead Letter in the last 24 hours.
- ``jobs_per_hour`` and ``run_time_by_job_type`` back the workspace's Dashboard Chart Sources.
- ``get_reference_jobs(reference_doctype, reference_name)`` lists the jobs whose reference is
  that document; the caller must be able to read the document.
- ``cancel_jobs(job_ids)`` is the list view's bulk Cancel: ``jobs.cancel_job`` for each job (same
  permission and state checks), returning one outcome per job instead of stopping at the first
  refusal.
- ``job_timeline(doctype, docname)`` is the ``additional_timeline_content`` hook of
  Background Job: the job's Job Execution Log rows as form timeline items.
- ``boot_session`` tells the Desk whether the user manages jobs, so bulk actions and buttons are
  offered to whom the API will accept them from.
"""

from datetime import timedelta

import frappe
from frappe import _
from frappe.utils import cint, escape_html, get_datetime, now_datetime

from dartwing.dartwing_core.api import jobs
from dartwing.dartwing_core.api.jobs import api_method
from dartwing.dartwing_core.background_jobs import execution_log, states
from dartwing.dartwing_core.background_jobs.permissions import background_job_query, is_manager
from dartwing.dartwing_core.background_jobs.submit import parse_job_list

FAILED_STATUSES = (states.FAILED, states.TIMED_OUT, states.DEAD_LETTER)
RUN_TIME_WINDOW = timedelta(days=7)
MAX_REFERENCE_JOBS = 50
# The hourly chart's series (its Dashboard Chart gives them colours in this order).
HOURLY_SERIES = (
	("Waiting", (states.PENDING, states.QUEUED)),
	("Running", (states.RUNNING,)),
	("Retrying", (states.RETRYING,)),
	("Completed", (states.COMPLETED,)),
	("Failed", FAILED_STATUSES),
	("Canceled", (states.CANCELED,)),
)


def _scope() -> str:
	"""SQL condition on `tabBackground Job` limiting rows to what the session user may read."""
	condition = background_job_query()
	return f"({condition})" if condition else "1 = 1"


def boot_session(bootinfo) -> None:
	if frappe.session.user != "Guest":
		bootinfo.dartwing = {"is_job_manager": is_manager()}


@frappe.whitelist(methods=["GET", "POST"])
@api_method
def failed_last_24h(filters=None) -> dict:
	"""Number card: jobs that failed, timed out or were dead-lettered in the last 24 hours."""
	since = now_datetime() - timedelta(hours=24)
	count = frappe.db.sql(
		f"""SELECT COUNT(*) FROM `tabBackground Job`
		WHERE status IN %(failed)s AND finished_at >= %(since)s AND {_scope()}""",
		{"failed": FAILED_STATUSES, "since": since},
	)[0][0]
	return {
		"value": cint(count),
		"fieldtype": "Int",
		"route": ["List", "Background Job", "List"],
		"route_options": {
			"status": ["in", list(FAILED_STATUSES)],
			"finished_at": [">=", since.strftime("%Y-%m-%d %H:%M:%S")],
		},
	}


@frappe.whitelist(methods=["GET", "POST"])
@api_method
def jobs_per_hour(chart_name=None, filters=None, **kwargs) -> dict:
	"""Chart source: jobs created in each of the last 24 hours, stacked by their status
	(Waiting: Pending or Queued; Failed: Failed, Timed Out or Dead Letter)."""
	first_hour = now_datetime().replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
	rows = frappe.db.sql(
		f"""SELECT DATE_FORMAT(creation, '%%Y-%%m-%%d %%H:00') AS hour, status, COUNT(*) AS jobs
		FROM `tabBackground Job`
		WHERE creation >= %(since)s AND {_scope()}
		GROUP BY hour, status""",
		{"since": first_hour},
		as_dict=True,
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


@frappe.whitelist(methods=["GET", "POST"])
@api_method
def run_time_by_job_type(chart_name=None, filters=None, **kwargs) -> dict:
	"""Chart source: average and 95th percentile run time (seconds) per job type, last 7 days."""
	rows = frappe.db.sql(
		f"""WITH ran AS (
			SELECT job_type, run_time FROM `tabBackground Job`
			WHERE finished_at >= %(since)s AND started_at IS NOT NULL AND {_scope()}
		),
		p AS (
			SELECT DISTINCT job_type,
				PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY run_time) OVER (PARTITION BY job_type) AS p95
			FROM ran
		)
		SELECT ran.job_type, AVG(ran.run_time) AS avg_run, MAX(p.p95) AS p95
		FROM ran JOIN p ON p.job_type = ran.job_type
		GROUP BY ran.job_type ORDER BY avg_run DESC""",
		{"since": now_datetime() - RUN_TIME_WINDOW},
		as_dict=True,
	)
	return {
		"labels": [row.job_type for row in rows],
		"datasets": [
			{"name": _("Average (s)"), "values": [round(float(row.avg_run or 0), 2) for row in rows]},
			{"name": _("p95 (s)"), "values": [round(float(row.p95 or 0), 2) for row in rows]},
		],
	}


@frappe.whitelist(methods=["GET"])
@api_method
def get_reference_jobs(reference_doctype: str, reference_name: str, limit: int = 10) -> dict:
	"""The latest jobs whose reference is this document, and how many there are by status.

	Every Desk form asks, so a document the user cannot read (or that does not exist) simply has
	no jobs rather than raising an error.
	"""
	limit = min(max(cint(limit), 1), MAX_REFERENCE_JOBS)
	empty = {"jobs": [], "total": 0, "counts_by_status": {}}
	if not frappe.db.exists("DocType", reference_doctype) or not frappe.db.exists(
		reference_doctype, reference_name
	):
		return empty
	if not frappe.has_permission(reference_doctype, "read", reference_name):
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


@frappe.whitelist(methods=["POST"])
@api_method
def cancel_jobs(job_ids: list | str) -> dict:
	results = []
	for job_id in parse_job_list(job_ids):
		frappe.db.savepoint("dartwing_cancel_many")
		messages = len(frappe.local.message_log)
		try:
			results.append({**jobs.cancel_job(job_id), "error": None})
		except (frappe.ValidationError, frappe.DoesNotExistError, frappe.PermissionError) as exc:
			frappe.db.rollback(save_point="dartwing_cancel_many")
			del frappe.local.message_log[messages:]
			results.append({"job_id": job_id, "status": None, "error": str(exc)})
	return {"results": results}


def job_timeline(doctype: str, docname: str) -> list[dict]:
	"""``additional_timeline_content`` hook: the job's events as form timeline items.

	Frappe calls it while loading the form, after checking that the user may read the job.
	"""
	items = []
	for event in execution_log.history(docname):
		parts = [f"<b>{escape_html(_(event.event))}</b>"]
		if event.from_status and event.to_status and event.from_status != event.to_status:
			parts.append(f"{escape_html(_(event.from_status))} &rarr; {escape_html(_(event.to_status))}")
		if event.attempt:
			parts.append(escape_html(_("attempt {0}").format(event.attempt)))
		if event.duration:
			parts.append(f"{event.duration:.2f} s")
		if event.worker:
			parts.append(escape_html(event.worker))
		if event.actor:
			parts.append(escape_html(event.actor))
		message = f"<div class='text-muted small'>{escape_html(event.message)}</div>" if event.message else ""
		items.append(
			{
				"creation": get_datetime(event.timestamp),
				"content": f"<div class='dartwing-job-event' data-event='{escape_html(event.event)}'>"
				f"{' &middot; '.join(parts)}{message}</div>",
			}
		)
	return items
