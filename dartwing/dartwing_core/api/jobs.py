"""Dartwing's whitelisted API: thin wrappers over the engine in ``background_jobs``.

Every method is rate-limited per user (``api_rate_limit_per_minute`` in Background Job
Settings); methods that change state accept POST only. Errors are Frappe exceptions carrying
the HTTP status a client should act on: 417 bad input, 403 not allowed, 404 no such job,
409 duplicate (strict mode) or illegal state change, 412 precondition refused, 429 rate limited
(with ``Retry-After``), 503 precondition unavailable.
"""

import functools

import frappe
from frappe import _
from werkzeug.wrappers import Response

from dartwing.dartwing_core.background_jobs import (
	cancellation,
	execution_log,
	job_views,
	manual_retry,
	metrics,
	pausing,
	rate_limit,
	submit,
	submit_input,
)
from dartwing.dartwing_core.background_jobs.permissions import can_cancel_job, is_manager
from dartwing.dartwing_core.background_jobs.settings import get_settings


def api_method(fn):
	"""Per-user rate limit and a logged-in user for every API method."""

	@functools.wraps(fn)
	def wrapper(*args, **kwargs):
		if frappe.session.user == "Guest":
			raise frappe.PermissionError(_("Log in to use the background job API"))
		rate_limit.hit(
			f"api:{fn.__name__}", frappe.session.user, get_settings().api_rate_limit_per_minute, 60
		)
		return fn(*args, **kwargs)

	return wrapper


def _require_manager():
	if not is_manager():
		raise frappe.PermissionError(_("Only a Background Job Manager can do this"))


@frappe.whitelist(methods=["POST"])
@api_method
def submit_job(
	job_type: str | None = None,
	parameters: dict | str | None = None,
	organization: str | None = None,
	priority: str | None = None,
	depends_on: list | str | None = None,
	run_at: str | None = None,
	reference_doctype: str | None = None,
	reference_name: str | None = None,
	strict: bool = False,
) -> dict:
	return submit.submit(
		job_type,
		parameters=parameters,
		organization=organization,
		priority=priority,
		depends_on=depends_on,
		run_at=run_at,
		reference_doctype=reference_doctype,
		reference_name=reference_name,
		strict=strict,
	)


@frappe.whitelist(methods=["GET"])
@api_method
def get_job_status(job_id: str | None = None) -> dict:
	return job_views.status_view(job_views.get_readable_job(job_id))


@frappe.whitelist(methods=["GET"])
@api_method
def get_job_history(job_id: str | None = None) -> dict:
	job_views.get_readable_job(job_id)
	return {"job_id": job_id, "events": execution_log.history(job_id)}


@frappe.whitelist(methods=["GET"])
@api_method
def list_jobs(
	status: str | None = None,
	job_type: str | None = None,
	organization: str | None = None,
	from_date: str | None = None,
	to_date: str | None = None,
	limit: int = 20,
	offset: int = 0,
) -> dict:
	return job_views.list_view(status, job_type, organization, from_date, to_date, limit, offset)


@frappe.whitelist(methods=["POST"])
@api_method
def cancel_job(job_id: str | None = None) -> dict:
	job = job_views.get_readable_job(job_id)
	if not can_cancel_job(job.owner, job.organization):
		raise frappe.PermissionError(_("Only the job's owner or a Background Job Manager can cancel it"))
	return {"job_id": job_id, "status": cancellation.cancel(job_id)}


@frappe.whitelist(methods=["POST"])
@api_method
def retry_job(job_id: str | None = None, parameters: dict | str | None = None) -> dict:
	job_views.get_readable_job(job_id)
	_require_manager()
	return {"job_id": job_id, "status": manual_retry.retry(job_id, parameters)}


@frappe.whitelist(methods=["POST"])
@api_method
def retry_jobs(job_ids: list | str | None = None) -> dict:
	_require_manager()
	jobs = submit_input.parse_job_list(job_ids, "job_ids")
	if not jobs:
		frappe.throw(_("job_ids is required"))
	return {"results": manual_retry.retry_many(jobs)}


@frappe.whitelist(methods=["POST"])
@api_method
def pause_queue(queue: str | None = None, job_type: str | None = None) -> dict:
	_require_manager()
	return pausing.pause(queue=queue, job_type=job_type)


@frappe.whitelist(methods=["POST"])
@api_method
def resume_queue(queue: str | None = None, job_type: str | None = None) -> dict:
	_require_manager()
	return pausing.resume(queue=queue, job_type=job_type)


@frappe.whitelist(methods=["GET"])
@api_method
def get_job_metrics(
	organization: str | None = None, job_type: str | None = None, since: str | None = None
) -> dict:
	return metrics.job_metrics(organization=organization, job_type=job_type, since=since)


@frappe.whitelist(methods=["GET"])
@api_method
def get_queue_stats() -> dict:
	_require_manager()
	return metrics.queue_stats()


@frappe.whitelist(methods=["GET"])
@api_method
def prometheus_metrics() -> Response:
	"""Prometheus scrape target; authenticate as a manager (session or ``Authorization: token``)."""
	_require_manager()
	from prometheus_client import CONTENT_TYPE_LATEST

	return Response(metrics.prometheus_text(), content_type=CONTENT_TYPE_LATEST)
