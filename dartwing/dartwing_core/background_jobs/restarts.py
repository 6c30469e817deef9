"""Restarts cost nothing: a job handed back without counting an attempt, and the poison-pill guard.

Contract:
- ``shutdown_grace(job_type, settings)``: how long a running job may go on once its worker was
  told to stop (the Job Type's ``shutdown_grace_seconds`` when set, else the settings').
  ``max_recoveries(job_type, settings)`` likewise: how many times in a row a job whose worker
  died under it is recovered free before it goes to Dead Letter.
- ``hand_back(job, event, message, ...)`` is how a Running job goes back to the queue without
  counting an attempt, for a stopping worker (``Interrupted``, from the execution) and for the
  reaper (``Recovered``): Running -> Retrying (the event, with the worker and the reason) ->
  Queued at once (``Requeued``; the state table has no Running -> Queued), guarded by the
  attempt and token the caller saw; ``recoveries`` + 1; the job keeps its place in line
  (``queued_at``) and its checkpoint. ``attempt`` still counts runs (it is what fences a run's
  writes); the retry budget counts ``charged_attempts(job)`` = ``attempt - recoveries``.
- A work horse that ends itself without recording its job (a forced stop: heartbeats that could
  not be written, a handler that would not stop) calls ``note_abandoned`` (Redis, a day): that
  attempt ended for a reason of the job's own, so the reaper charges it (``abandoned``) instead
  of taking it for a worker that died under it.
- ``pass_token_on(job, queue, token)``: a work horse that stops before it claims anything pushes
  a fresh token for the job its token was for, so that job does not wait for the reaper.
"""

import frappe
from frappe import _
from frappe.utils import cint, flt, now_datetime

from dartwing.dartwing_core.background_jobs import clock, dispatch, states
from dartwing.dartwing_core.background_jobs.transitions import transition

ABANDONED_KEY = "dartwing:abandoned"
ABANDONED_TTL_SECONDS = 24 * 3600


def shutdown_grace(job_type, settings) -> float:
	return flt(job_type.get("shutdown_grace_seconds")) or flt(settings.shutdown_grace_seconds)


def max_recoveries(job_type, settings) -> int:
	return cint(job_type.get("max_recoveries")) or cint(settings.max_recoveries)


def charged_attempts(job) -> int:
	return max(cint(job.attempt) - cint(job.recoveries), 0)


def hand_back(
	job: frappe._dict,
	*,
	event: str,
	message: str,
	rq_job_id: str | None = None,
	duration: float | None = None,
	worker: str | None = None,
	values: dict | None = None,
) -> bool:
	"""``job``: the Running row as the caller saw it (name, queue, attempt, recoveries, queued_at)."""
	now = clock.utc_now()
	moved = transition(
		job.name,
		states.RETRYING,
		expect={states.RUNNING},
		attempt=job.attempt,
		rq_job_id=rq_job_id,
		event=event,
		message=message,
		duration=duration,
		worker=worker,
		values={
			"recoveries": cint(job.recoveries) + 1,
			"worker_stopping": 0,
			"next_retry_at": clock.utc_to_site(now),
			"next_retry_utc": now,
			**(values or {}),
		},
	)
	if not moved:
		return False
	dispatch.mark_queued(
		job.name,
		job.queue,
		expect={states.RETRYING},
		values={"queued_at": job.queued_at or now_datetime()},
	)
	return True


def _abandoned_key(site: str, job: str) -> str:
	return f"{ABANDONED_KEY}:{site}:{job}"


def note_abandoned(connection, site: str, job: str, attempt: int) -> None:
	"""From any thread: this work horse ends without recording ``attempt`` of ``job``."""
	connection.set(_abandoned_key(site, job), int(attempt), ex=ABANDONED_TTL_SECONDS)


def abandoned(connection, jobs: list[frappe._dict]) -> set[str]:
	"""The jobs among ``jobs`` (rows with name and attempt) whose work horse noted it ended
	itself on that very attempt."""
	if not jobs:
		return set()
	pipe = connection.pipeline()
	for job in jobs:
		pipe.get(_abandoned_key(frappe.local.site, job.name))
	return {
		job.name
		for job, noted in zip(jobs, pipe.execute(), strict=True)
		if noted is not None and cint(noted) == cint(job.attempt)
	}


def pass_token_on(job: str | None, queue: str, token: str | None) -> None:
	if not (job and token):
		return
	dispatch.mark_queued(
		job,
		queue,
		expect={states.QUEUED},
		rq_job_id=token,
		message=_("Its worker was stopping and claimed nothing; pushed again"),
	)
	frappe.db.commit()
