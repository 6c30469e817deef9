"""Canceling jobs.

Contract: ``cancel(job, actor)``:
- Pending / Queued / Retrying: Canceled at once (who and when recorded), its RQ token removed
  after commit, and the jobs waiting on it re-examined (its dependents fail, its concurrency
  slot frees).
- Running: ``cancel_requested`` is set and a ``Cancel Requested`` event logged; the worker's
  watchdog sees it within a fraction of a second, the handler gets ``JobCanceled`` at its next
  ``progress`` / ``raise_if_canceled``, and a handler that never checks is interrupted after
  ``cancel_grace_seconds``. The execution then records Canceled.
- Terminal jobs cannot be canceled (``InvalidTransitionError``, HTTP 409).
Returns the status right after the call.
"""

import frappe
from frappe import _
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import dispatch, execution_log, states, tokens
from dartwing.dartwing_core.background_jobs.api_errors import InvalidTransitionError
from dartwing.dartwing_core.background_jobs.transitions import lock_job, transition


def cancel(job: str, actor: str | None = None) -> str:
	actor = actor or frappe.session.user
	row = lock_job(job)
	if not row:
		raise frappe.DoesNotExistError(_("Background Job {0} not found").format(job))
	if row.status in states.TERMINAL:
		raise InvalidTransitionError(_("Background Job {0} is already {1}").format(job, _(row.status)))

	now = now_datetime()
	if row.status == states.RUNNING:
		frappe.db.sql(
			"""UPDATE `tabBackground Job` SET cancel_requested = 1, canceled_by = %s, canceled_at = %s, modified = %s
			WHERE name = %s""",
			(actor, now, now, job),
		)
		execution_log.record(
			job,
			states.EVENT_CANCEL_REQUESTED,
			organization=row.organization,
			job_type=row.job_type,
			from_status=row.status,
			to_status=row.status,
			attempt=row.attempt,
			actor=actor,
			message=_("Cancel requested by {0}").format(actor),
		)
		return states.RUNNING

	transition(
		job,
		states.CANCELED,
		actor=actor,
		message=_("Canceled by {0}").format(actor),
		values={"canceled_by": actor, "canceled_at": now, "next_retry_at": None, "next_retry_utc": None},
	)
	tokens.remove_token_after_commit(row.rq_job_id if row.status == states.QUEUED else None)
	dispatch.after_job_finished(job)
	return states.CANCELED
