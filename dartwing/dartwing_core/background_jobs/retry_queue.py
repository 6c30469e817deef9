"""The retry queue: Retrying jobs whose ``next_retry_at`` has come are queued again.

Contract: ``requeue_due_retries()`` runs from the scheduler every minute. It takes due jobs in
``next_retry_at`` order, in batches that commit one by one (each batch's RQ pushes go out on its
commit), skips paused queues / job types and suspended organizations, and is safe to run on
several schedulers at once: the Retrying -> Queued move is conditional, so each job is queued once.
Returns how many jobs it queued.
"""

import frappe
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import dispatch, states
from dartwing.dartwing_core.background_jobs.settings import (
	paused_job_types,
	paused_queues,
	suspended_organizations,
)


def _due_batch(batch_size: int) -> list[tuple[str, str]]:
	conditions = ["status = 'Retrying'", "next_retry_at <= %(now)s"]
	values = {"now": now_datetime(), "limit": batch_size}
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
		ORDER BY next_retry_at LIMIT %(limit)s""",
		values,
	)


def requeue_due_retries(batch_size: int = 500) -> int:
	queued = 0
	while True:
		batch = _due_batch(batch_size)
		for job, queue in batch:
			if dispatch.mark_queued(job, queue, expect={states.RETRYING}):
				queued += 1
		frappe.db.commit()
		if len(batch) < batch_size:
			return queued
