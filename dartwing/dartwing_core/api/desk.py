"""Dartwing's Desk endpoints: workspace cards and charts, a document's jobs, the job timeline.

Contract: the queries are the engine's read models (``background_jobs.desk_views``); these
functions shape them for Frappe's number cards, chart sources and hooks.
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
- ``get_upkeep_status()`` (managers) backs the workspace's upkeep banner: ``upkeep.liveness()``, the
  seconds since the upkeep runner's last pass, whether Frappe's scheduler is active, and warnings.
- ``boot_session`` tells the Desk whether the user manages jobs, so bulk actions and buttons are
  offered to whom the API will accept them from, and which fields hold stored text (kept as
  written, escaped by the Desk's formatters: ``stored_text``).
"""

from datetime import timedelta

import frappe
from frappe import _
from frappe.utils import escape_html, get_datetime, now_datetime

from dartwing.dartwing_core.api import jobs
from dartwing.dartwing_core.api.jobs import api_method
from dartwing.dartwing_core.background_jobs import desk_views, execution_log, states, stored_text, upkeep
from dartwing.dartwing_core.background_jobs.permissions import is_manager
from dartwing.dartwing_core.background_jobs.submit_input import parse_job_list

RUN_TIME_WINDOW = timedelta(days=7)


def boot_session(bootinfo) -> None:
	if frappe.session.user != "Guest":
		bootinfo.dartwing = {
			"is_job_manager": is_manager(),
			"stored_text_fields": {
				doctype: list(fields) for doctype, fields in stored_text.STORED_TEXT_FIELDS.items()
			},
		}


@frappe.whitelist(methods=["GET", "POST"])
@api_method
def failed_last_24h(filters=None) -> dict:
	"""Number card: jobs that failed, timed out or were dead-lettered in the last 24 hours."""
	since = now_datetime() - timedelta(hours=24)
	return {
		"value": desk_views.failed_since(since),
		"fieldtype": "Int",
		"route": ["List", "Background Job", "List"],
		"route_options": {
			"status": ["in", list(states.FAILED_STATUSES)],
			"finished_at": [">=", since.strftime("%Y-%m-%d %H:%M:%S")],
		},
	}


@frappe.whitelist(methods=["GET", "POST"])
@api_method
def jobs_per_hour(chart_name=None, filters=None, **kwargs) -> dict:
	"""Chart source: jobs created in each of the last 24 hours, stacked by their status
	(Waiting: Pending or Queued; Failed: Failed, Timed Out or Dead Letter)."""
	return desk_views.jobs_per_hour(now_datetime())


@frappe.whitelist(methods=["GET", "POST"])
@api_method
def run_time_by_job_type(chart_name=None, filters=None, **kwargs) -> dict:
	"""Chart source: average and 95th percentile run time (seconds) per job type of the jobs
	created in the last 7 days that ran."""
	rows = desk_views.run_time_by_job_type(now_datetime() - RUN_TIME_WINDOW)
	return {
		"labels": [row.job_type for row in rows],
		"datasets": [
			{"name": _("Average (s)"), "values": [round(row.avg, 2) for row in rows]},
			{"name": _("p95 (s)"), "values": [round(row.p95 or 0, 2) for row in rows]},
		],
	}


@frappe.whitelist(methods=["GET"])
@api_method
def get_reference_jobs(
	reference_doctype: str | None = None, reference_name: str | None = None, limit: int = 10
) -> dict:
	"""The latest jobs whose reference is this document, and how many there are by status.

	Every Desk form asks, so a document the user cannot read (or that does not exist) simply has
	no jobs rather than raising an error.
	"""
	return desk_views.reference_jobs(reference_doctype, reference_name, limit)


@frappe.whitelist(methods=["GET"])
@api_method
def get_upkeep_status() -> dict:
	if not is_manager():
		raise frappe.PermissionError(_("Only a Background Job Manager can see the upkeep status"))
	return upkeep.liveness()


@frappe.whitelist(methods=["POST"])
@api_method
def cancel_jobs(job_ids: list | str | None = None) -> dict:
	results = []
	for job_id in parse_job_list(job_ids, "job_ids"):
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
