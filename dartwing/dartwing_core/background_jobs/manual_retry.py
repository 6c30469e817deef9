"""A manager's retry of a job that ended Failed, Timed Out or Dead Letter.

Contract: ``retry(job, parameters=None, actor)`` queues the job again with a fresh set of attempts
(its history is kept), optionally with edited parameters (validated like a submission, bound to
the function's signature for a job type that runs a function: ``method_jobs.check_call``). With
a dedup window the job takes the dedup key of its (edited) parameters through the same unique
index as ``submit`` (``dedup.claim_dedup_key``): an identical *active* job makes the retry fail
with HTTP 409 and changes nothing, however many retries and submits race. Any other
status is refused with ``InvalidTransitionError`` (HTTP 409). ``retry_many`` does the same for a
list and reports each job's outcome.

A retried job still runs as its owner, so editing the parameters of someone else's job is for a
System Manager only: any other manager could otherwise make code run as that user with
parameters of their choosing. Retrying it unchanged is allowed.
"""

import frappe
from frappe import _
from frappe.utils import cint

from dartwing.dartwing_core.background_jobs import dedup, dispatch, hashing, method_jobs, states, submit_input
from dartwing.dartwing_core.background_jobs.api_errors import DuplicateJobError, InvalidTransitionError
from dartwing.dartwing_core.background_jobs.transitions import lock_job


def retry(job: str, parameters=None, actor: str | None = None) -> str:
	actor = actor or frappe.session.user
	row = lock_job(job)
	if not row:
		raise frappe.DoesNotExistError(_("Background Job {0} not found").format(job))
	if row.status not in states.RETRYABLE_BY_MANAGER:
		raise InvalidTransitionError(
			_("Only Failed, Timed Out or Dead Letter jobs can be retried; {0} is {1}").format(
				job, _(row.status)
			)
		)

	edits = parameters not in (None, "")
	if (
		edits
		and row.owner != actor
		and actor != "Administrator"
		and "System Manager" not in frappe.get_roles(actor)
	):
		raise frappe.PermissionError(
			_(
				"Job {0} runs as {1}: only a System Manager can retry someone else's job with edited parameters"
			).format(job, row.owner)
		)

	values = {
		"attempt": 0,
		"recoveries": 0,
		"recoveries_in_a_row": 0,
		"cancel_requested": 0,
		"progress_percent": 0,
		"progress_message": None,
		"finished_at": None,
		"result": None,
		"output_reference": None,
	}
	message = _("Retried by {0}").format(actor)
	if edits:
		parameters = submit_input.parse_parameters(parameters)
		if method := frappe.get_cached_value("Job Type", row.job_type, "method"):
			method_jobs.check_call(method, parameters)
		new_hash = hashing.parameters_hash(row.job_type, row.organization, parameters)
		values.update(
			parameters=hashing.canonical_json(parameters), parameters_hash=new_hash, checkpoint=None
		)
		message = _("Retried by {0} with edited parameters").format(actor)
	if cint(frappe.get_cached_value("Job Type", row.job_type, "dedup_window_seconds")) > 0:
		dedup_key = values.get("parameters_hash") or frappe.db.get_value(
			"Background Job", job, "parameters_hash"
		)
		if clash := dedup.claim_dedup_key(job, dedup_key):
			raise DuplicateJobError(_("An identical job is already active: {0}").format(clash.name))

	queue = frappe.db.get_value("Background Job", job, "queue")
	dispatch.mark_queued(
		job, queue, expect=states.RETRYABLE_BY_MANAGER, actor=actor, message=message, values=values
	)
	return states.QUEUED


def retry_many(jobs: list[str], actor: str | None = None) -> list[dict]:
	outcomes = []
	for job in jobs:
		frappe.db.savepoint("dartwing_retry_many")
		try:
			outcomes.append({"job_id": job, "status": retry(job, actor=actor), "error": None})
		except (frappe.ValidationError, frappe.DoesNotExistError) as exc:
			frappe.db.rollback(save_point="dartwing_retry_many")
			outcomes.append({"job_id": job, "status": None, "error": str(exc)})
	return outcomes
