"""The retry queue: Retrying jobs whose ``next_retry_at`` has come are queued again.

Contract: ``requeue_due_retries(due_after=None, now=None)`` runs from the upkeep runner (``upkeep``:
every pass with ``due_after``, the previous pass's time, so it reads only the retries that came due
since; every minute without, a full sweep) and from the scheduler every minute as a fallback
(``upkeep.scheduler_fallback``, when no runner passes). Due means ``next_retry_utc <= now`` (UTC,
``clock``), whatever the site's time zone. It takes due jobs in ``next_retry_utc`` order, in batches that commit one by one, each queued
by one ``dispatch.mark_queued_many`` (its RQ pushes go out on its commit in one pipeline, at the
front of RQ's queue: a due retry does not wait behind the jobs queued meanwhile, Frappe's own included;
``commit=False`` leaves that to the caller's transaction; rows another transaction holds wait for
the next tick), skips paused queues / job
types and suspended organizations, and is safe to run on several runners at once: the
Retrying -> Queued move is conditional, so each job is queued once.
Returns how many jobs it queued.
"""

from datetime import datetime

import frappe

from dartwing.dartwing_core.background_jobs import clock, dispatch, states
from dartwing.dartwing_core.background_jobs.settings import (
	paused_job_types,
	paused_queues,
	suspended_organizations,
)


def _due_batch(batch_size: int, due_after: datetime | None, now: datetime) -> list[tuple[str, str]]:
	conditions = ["status = 'Retrying'", "next_retry_utc <= %(now)s"]
	values = {"now": now, "limit": batch_size}
	if due_after is not None:
		conditions.append("next_retry_utc > %(due_after)s")
		values["due_after"] = due_after
	for column, excluded in (
		("queue", paused_queues()),
		("job_type", paused_job_types()),
		("organization", suspended_organizations()),
	):
		if excluded:
			conditions.append(f"{column} NOT IN %({column})s")
			values[column] = tuple(excluded)
	return frappe.db.sql(
		f"""SELECT name, queue FROM `tabBackground Job` WHERE {" AND ".join(conditions)}
		ORDER BY next_retry_utc LIMIT %(limit)s""",
		values,
	)


def requeue_due_retries(
	batch_size: int = 500, due_after: datetime | None = None, now: datetime | None = None, commit: bool = True
) -> int:
	now = now or clock.utc_now()
	queued = 0
	while True:
		batch = _due_batch(batch_size, due_after, now)
		moved = dispatch.mark_queued_many(batch, expect={states.RETRYING}, at_front=True)
		queued += moved
		if commit:
			frappe.db.commit()
		# A short batch was the last; a batch of jobs all held by other transactions waits for the next tick.
		if len(batch) < batch_size or not moved:
			return queued
