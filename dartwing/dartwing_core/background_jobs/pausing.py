"""Pausing and resuming a queue or a job type.

Contract: ``pause(queue=None, job_type=None)`` stops new work from starting: the queue is added
to Background Job Settings' paused queues (or the Job Type is marked paused), its Queued jobs go
back to Pending (event Paused) and their tokens leave RQ. Running jobs finish. ``resume(...)``
undoes it and queues the waiting jobs at once (event Resumed), and the retries that came due
while they were held (``jobs_moved`` counts the Pending ones). Both are idempotent and return the
current state ``{"queue", "job_type", "paused", "jobs_moved"}``. Suspending / reactivating an
organization holds / releases its jobs the same way.
"""

import frappe
from frappe import _
from frappe.utils.background_jobs import get_queues_timeout

from dartwing.dartwing_core.background_jobs import dispatch, retry_queue, states, tokens
from dartwing.dartwing_core.background_jobs.settings import SETTINGS_DOCTYPE, clear_engine_cache
from dartwing.dartwing_core.background_jobs.transitions import transition


def _validate(queue: str | None, job_type: str | None) -> None:
	if bool(queue) == bool(job_type) or not isinstance(queue or job_type, str):
		frappe.throw(_("Give either a queue or a job type"))
	if job_type and not frappe.db.exists("Job Type", job_type):
		frappe.throw(_("Job type {0} does not exist").format(frappe.bold(job_type)))
	if queue and queue not in get_queues_timeout():
		frappe.throw(
			_("Queue {0} does not exist; the queues are {1}").format(
				frappe.bold(queue), ", ".join(sorted(get_queues_timeout()))
			)
		)


def _set_paused(queue: str | None, job_type: str | None, paused: bool) -> None:
	if job_type:
		frappe.db.set_value("Job Type", job_type, "paused", int(paused))
	else:
		settings = frappe.get_doc(SETTINGS_DOCTYPE)
		rows = [row for row in settings.paused_queues if row.queue != queue]
		settings.paused_queues = rows
		if paused:
			settings.append("paused_queues", {"queue": queue})
		settings.flags.ignore_permissions = True
		settings.save()
	clear_engine_cache()


def _jobs(column: str, value: str, status: str) -> list[frappe._dict]:
	return frappe.db.sql(
		f"SELECT name, rq_job_id FROM `tabBackground Job` WHERE status = %s AND `{column}` = %s ORDER BY creation",
		(status, value),
		as_dict=True,
	)


def _hold(column: str, value: str, reason: str) -> int:
	"""Queued jobs go back to Pending and their tokens leave RQ."""
	moved = 0
	for job in _jobs(column, value, states.QUEUED):
		if transition(
			job.name, states.PENDING, expect={states.QUEUED}, message=reason, values={"queued_at": None}
		):
			tokens.remove_token_after_commit(job.rq_job_id)
			moved += 1
	return moved


def _release(column: str, value: str) -> int:
	moved = sum(
		dispatch.queue_job(job.name, event=states.EVENT_RESUMED) == states.QUEUED
		for job in _jobs(column, value, states.PENDING)
	)
	# Upkeep looks at retries as they come due; those that came due while held go now.
	retry_queue.requeue_due_retries(commit=False)
	return moved


def _target(queue: str | None, job_type: str | None) -> tuple[str, str]:
	return ("queue", queue) if queue else ("job_type", job_type)


def pause(queue: str | None = None, job_type: str | None = None) -> dict:
	_validate(queue, job_type)
	_set_paused(queue, job_type, True)
	moved = _hold(*_target(queue, job_type), _("Paused"))
	return {"queue": queue, "job_type": job_type, "paused": True, "jobs_moved": moved}


def resume(queue: str | None = None, job_type: str | None = None) -> dict:
	_validate(queue, job_type)
	_set_paused(queue, job_type, False)
	moved = _release(*_target(queue, job_type))
	return {"queue": queue, "job_type": job_type, "paused": False, "jobs_moved": moved}


def hold_organization(organization: str) -> int:
	"""A suspended organization's queued jobs wait in Pending."""
	clear_engine_cache()
	return _hold("organization", organization, _("Organization suspended"))


def release_organization(organization: str) -> int:
	clear_engine_cache()
	return _release("organization", organization)
