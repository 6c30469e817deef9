"""Read models of jobs for the API: what a caller may see of one job and of many.

Contract:
- ``get_readable_job(job_id)`` returns the row or raises ``DoesNotExistError`` (HTTP 404) when
  the job does not exist *or* the caller may not read it, so job ids of other organizations
  reveal nothing.
- ``status_view(row)`` is the public shape of a job; ``traceback`` only for job managers.
- ``list_view(...)`` filters by status, job type, organization and creation date range, scoped to
  the caller's organizations (managers: all), with ``limit`` (1..100) and ``offset``.
"""

import json

import frappe
from frappe import _
from frappe.utils import cint

from dartwing.dartwing_core.background_jobs import clock, states
from dartwing.dartwing_core.background_jobs.permissions import background_job_query, can_read_job, is_manager

STATUS_FIELDS = (
	"name", "job_type", "organization", "owner", "status", "priority", "queue", "progress_percent",
	"progress_message", "attempt", "recoveries", "max_retries", "next_retry_at", "run_at", "creation", "queued_at",
	"started_at", "finished_at", "wait_time", "run_time", "result", "output_reference", "error_type",
	"error_message", "traceback", "cancel_requested", "canceled_by", "canceled_at", "correlation_id",
	"reference_doctype", "reference_name",
)  # fmt: skip
LIST_FIELDS = (
	"name", "job_type", "organization", "owner", "status", "priority", "queue", "progress_percent",
	"attempt", "creation", "started_at", "finished_at", "error_type",
)  # fmt: skip
MAX_LIMIT = 100


def get_readable_job(job_id: str) -> frappe._dict:
	if not job_id or not isinstance(job_id, str):
		frappe.throw(_("job_id is required"))
	rows = frappe.db.sql(
		f"SELECT {', '.join(STATUS_FIELDS)} FROM `tabBackground Job` WHERE name = %s", job_id, as_dict=True
	)
	if not rows or not can_read_job(rows[0].organization):
		raise frappe.DoesNotExistError(_("Background Job {0} not found").format(job_id))
	return rows[0]


def status_view(row: frappe._dict) -> dict:
	view = {("job_id" if key == "name" else key): row.get(key) for key in STATUS_FIELDS}
	view["result"] = json.loads(row.result) if row.result else None
	view["cancel_requested"] = bool(row.cancel_requested)
	view["terminal"] = row.status in states.TERMINAL
	if not is_manager():
		view.pop("traceback")
	return view


def list_view(
	status: str | None = None,
	job_type: str | None = None,
	organization: str | None = None,
	from_date: str | None = None,
	to_date: str | None = None,
	limit: int = 20,
	offset: int = 0,
) -> dict:
	limit, offset = cint(limit), cint(offset)
	if not 1 <= limit <= MAX_LIMIT:
		frappe.throw(_("limit must be between 1 and {0}").format(MAX_LIMIT))
	if offset < 0:
		frappe.throw(_("offset cannot be negative"))
	conditions, values = [], {}
	if status:
		statuses = [s.strip() for s in status.split(",")] if isinstance(status, str) else list(status)
		unknown = [s for s in statuses if s not in states.STATUSES]
		if unknown:
			frappe.throw(
				_("Unknown status {0}; use one of {1}").format(", ".join(unknown), ", ".join(states.STATUSES))
			)
		conditions.append("status IN %(statuses)s")
		values["statuses"] = tuple(statuses)
	if job_type:
		conditions.append("job_type = %(job_type)s")
		values["job_type"] = job_type
	for name, value, operator in (("from_date", from_date, ">="), ("to_date", to_date, "<=")):
		if value:
			values[name] = clock.parse_site_datetime(value, name)
			conditions.append(f"creation {operator} %({name})s")
	if organization:
		conditions.append("organization = %(organization)s")
		values["organization"] = organization
	if scope := background_job_query():
		conditions.append(scope)

	where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
	total = frappe.db.sql(f"SELECT COUNT(*) FROM `tabBackground Job` {where}", values)[0][0]
	jobs = frappe.db.sql(
		f"""SELECT {", ".join(LIST_FIELDS)} FROM `tabBackground Job` {where}
		ORDER BY creation DESC, name DESC LIMIT {limit} OFFSET {offset}""",
		values,
		as_dict=True,
	)
	for job in jobs:
		job["job_id"] = job.pop("name")
	return {"jobs": jobs, "total": total, "limit": limit, "offset": offset}
