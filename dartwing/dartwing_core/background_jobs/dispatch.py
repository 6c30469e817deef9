"""Scheduling: when a Pending job may be Queued, and pushing the wake-up to RQ.

Contract:
- The database row is the truth; RQ only carries a *wake-up token* naming the queue. A worker
  that receives a token claims the best Queued job of that queue (``claiming.claim``), so
  priority and aging are decided in SQL, not by RQ's FIFO order.
- ``queue_job(job)`` moves one Pending job to Queued if nothing holds it back, and pushes its
  token after the transaction commits (``enqueue_after_commit``). A job waits in Pending while a
  parent is not Completed, ``run_at`` is in the future, its queue or job type is paused, its
  organization is suspended, or its concurrency key is full. A parent that ended Failed /
  Timed Out / Dead Letter / Canceled fails the job and, in turn, its own dependents.
- The tokens themselves are ``tokens``' (``push_many``, ``new_token_id``, re-exported here).
  ``mark_queued_many`` queues many jobs of any queues at once (the retry tick), in one
  ``transition_many``.
- ``hold_parents(parents)``, in the transaction that inserts a job depending on ``parents``:
  locks their rows, marks them ``has_dependents`` and returns their status as it is now, so a
  parent finishing at the same moment either ends before the job is admitted (its status says
  so) or sees the job when it ends.
- ``after_job_finished(job, row)`` re-examines the jobs that may have been waiting for this one
  (its dependents and the jobs sharing its concurrency key). Given the row its final move
  returned (``transitions``), it looks for dependents only when ``has_dependents`` is set.
- ``dispatch_pending(due_after=None, now=None)`` re-examines Pending jobs: without ``due_after``
  (a full sweep: upkeep every minute, the scheduler's fallback hook) every Pending job that has no
  ``run_at`` or whose ``run_at`` has come; with it (every upkeep pass) only the jobs whose ``run_at``
  came after ``due_after``, an index range. Times are compared in UTC (``run_at_utc``, ``clock``).
"""

from datetime import datetime

import frappe
from frappe import _
from frappe.utils import cint, now_datetime

from dartwing.dartwing_core.background_jobs import clock, settings, states
from dartwing.dartwing_core.background_jobs.key_locks import hold_key_lock
from dartwing.dartwing_core.background_jobs.priority import PRIORITY_SQL
from dartwing.dartwing_core.background_jobs.tokens import (
	new_token_id,
	push_many,
)
from dartwing.dartwing_core.background_jobs.transitions import (
	lock_job,
	record_inserted_move,
	transition,
	transition_many,
)


def mark_queued(
	job: str,
	queue: str,
	*,
	expect,
	event: str | None = None,
	message: str | None = None,
	actor: str | None = None,
	rq_job_id: str | None = None,
	values: dict | None = None,
	locked_row: frappe._dict | None = None,
):
	"""Move a job to Queued (from any status the table allows) and push its token after commit."""
	token, namespaced_id = new_token_id(job)
	previous = transition(
		job,
		states.QUEUED,
		expect=expect,
		rq_job_id=rq_job_id,
		locked_row=locked_row,
		event=event,
		message=message,
		actor=actor,
		values={
			"queued_at": now_datetime(),
			"rq_job_id": namespaced_id,
			"next_retry_at": None,
			"next_retry_utc": None,
			**(values or {}),
		},
	)
	if previous:
		push_many([(job, queue, token)])
	return previous


def mark_queued_many(jobs: list[tuple[str, str]], *, expect, at_front: bool = False) -> int:
	"""``mark_queued`` for many ``(job, queue)`` at once; jobs another transaction holds, or no
	longer in ``expect``, are left as they are. Returns how many were queued. ``at_front``: their
	tokens go ahead of what waits in RQ (``push_many``)."""
	queue_of = dict(jobs)
	tokens = {job: new_token_id(job) for job in queue_of}
	moved = transition_many(
		list(queue_of),
		states.QUEUED,
		expect=expect,
		values={"queued_at": now_datetime(), "next_retry_at": None, "next_retry_utc": None},
		job_values={job: {"rq_job_id": namespaced_id} for job, (_token, namespaced_id) in tokens.items()},
	)
	push_many([(row.name, queue_of[row.name], tokens[row.name][0]) for row in moved], at_front=at_front)
	return len(moved)


def _parents(job: str) -> list[frappe._dict]:
	return frappe.db.sql(
		"""SELECT parent_job.name, parent_job.status
		FROM `tabBackground Job Dependency` dependency
		JOIN `tabBackground Job` parent_job ON parent_job.name = dependency.depends_on
		WHERE dependency.parent = %s AND dependency.parenttype = 'Background Job'""",
		job,
		as_dict=True,
	)


def _key_has_room(key: str, job_type: str) -> bool:
	limit = cint(frappe.get_cached_value("Job Type", job_type, "concurrency_limit"))
	if limit <= 0:
		return True
	if not hold_key_lock(key):
		return False
	holders = frappe.db.sql(
		"""SELECT COUNT(*) FROM `tabBackground Job`
		WHERE concurrency_key = %s AND status IN %s""",
		(key, tuple(states.HOLDS_CONCURRENCY_SLOT)),
	)[0][0]
	return holders < limit


def waiting_reason(job: frappe._dict, parents: list[frappe._dict]) -> str | None:
	if any(parent.status != states.COMPLETED for parent in parents):
		return _("waiting for parent jobs")
	if job.run_at_utc and job.run_at_utc > clock.utc_now():
		return _("scheduled for {0}").format(job.run_at)
	held_back = settings.engine_state()
	if job.queue in held_back.paused_queues:
		return _("queue {0} is paused").format(job.queue)
	if job.job_type in held_back.paused_job_types:
		return _("job type {0} is paused").format(job.job_type)
	if job.organization in held_back.suspended_organizations:
		return _("organization {0} is suspended").format(job.organization)
	return None


def queue_job(job: str, event: str | None = None) -> str | None:
	"""Queue one Pending job if it may run now. Returns its status afterwards."""
	row = lock_job(job)
	if not row:
		return None
	if row.status != states.PENDING:
		return row.status
	return _queue_if_ready(row, _parents(job), event)


def admission(row: frappe._dict, parents: list[frappe._dict]) -> tuple[str, frappe._dict | None]:
	"""What a Pending job (or one about to be inserted) may become now: ``(QUEUED, None)`` when
	nothing holds it back (a concurrency slot is then held for it until the transaction ends),
	``(PENDING, None)`` when something does, ``(FAILED, parent)`` when a parent ended badly."""
	failed_parent = next((p for p in parents if p.status in states.BLOCKS_DEPENDENTS), None)
	if failed_parent:
		return states.FAILED, failed_parent
	if waiting_reason(row, parents):
		return states.PENDING, None
	if row.concurrency_key and not _key_has_room(row.concurrency_key, row.job_type):
		return states.PENDING, None
	return states.QUEUED, None


def _queue_if_ready(row: frappe._dict, parents: list[frappe._dict], event: str | None) -> str:
	status, failed_parent = admission(row, parents)
	if failed_parent:
		fail_for_parent(row.name, failed_parent.name, failed_parent.status)
	elif status == states.QUEUED:
		mark_queued(row.name, row.queue, expect={states.PENDING}, event=event, locked_row=row)
	return status


def queue_on_insert(row: frappe._dict) -> str:
	"""Make ``row`` (a job about to be inserted, admitted as QUEUED) a Queued row with its token's
	id; returns the token for ``announce_queued_on_insert`` once the row is in."""
	token, namespaced_id = new_token_id(row.name)
	row.update(status=states.QUEUED, queued_at=now_datetime(), rq_job_id=namespaced_id)
	return token


def announce_queued_on_insert(row: frappe._dict, token: str) -> None:
	"""The Pending -> Queued move's log row and events, and the token pushed after commit."""
	record_inserted_move(row, states.PENDING)
	push_many([(row.name, row.queue, token)])


def fail_for_parent(
	job: str, parent: str, parent_status: str, locked_row: frappe._dict | None = None
) -> None:
	message = _("Parent job {0} ended {1}").format(parent, _(parent_status))
	if transition(
		job,
		states.FAILED,
		expect={states.PENDING},
		locked_row=locked_row,
		message=message,
		values={"error_type": "DependencyFailed", "error_message": message},
	):
		after_job_finished(job)


def _dependents(job: str) -> list[str]:
	return frappe.db.sql_list(
		"""SELECT child.name FROM `tabBackground Job Dependency` dependency
		JOIN `tabBackground Job` child FORCE INDEX (PRIMARY) ON child.name = dependency.parent
		WHERE dependency.depends_on = %s AND dependency.parenttype = 'Background Job'
			AND child.status = 'Pending'
		ORDER BY child.creation""",
		job,
	)


def _waiting_for_key(key: str, limit: int) -> list[str]:
	return frappe.db.sql_list(
		f"""SELECT name FROM `tabBackground Job`
		WHERE concurrency_key = %s AND status = 'Pending'
		ORDER BY {PRIORITY_SQL} DESC, creation ASC LIMIT %s""",
		(key, limit),
	)


def hold_parents(parents: list[str]) -> list[frappe._dict]:
	"""The rows (``name``, ``status``) of ``parents``, locked and marked ``has_dependents``, in the
	order given; a parent deleted since it was checked raises ``DoesNotExistError``."""
	if not parents:
		return []
	found = {
		row.name: row
		for row in frappe.db.sql(
			"""SELECT name, status FROM `tabBackground Job` FORCE INDEX (PRIMARY) WHERE name IN %s
			ORDER BY name FOR UPDATE""",
			(tuple(parents),),
			as_dict=True,
		)
	}
	if missing := [parent for parent in parents if parent not in found]:
		frappe.throw(_("Parent job {0} not found").format(missing[0]), frappe.DoesNotExistError)
	frappe.db.sql(
		"""UPDATE `tabBackground Job` FORCE INDEX (PRIMARY) SET has_dependents = 1
		WHERE name IN %s AND has_dependents = 0""",
		(tuple(parents),),
	)
	return [found[parent] for parent in parents]


def after_job_finished(job: str, row: frappe._dict | None = None) -> None:
	"""Let the jobs that waited on ``job`` (its dependents, its concurrency key) go if they can.
	``row``: the job's ``concurrency_key`` and ``job_type`` when the caller has them (they never
	change after submit), saving their read; with ``has_dependents`` as its final move found it
	(``transitions``), dependents are looked for only when it is set."""
	if row is None or row.get("has_dependents", 1):
		for child in _dependents(job):
			queue_job(child)
	if row is None:
		row = frappe.db.get_value("Background Job", job, ["concurrency_key", "job_type"], as_dict=True)
	key, job_type = row.concurrency_key, row.job_type
	if key:
		limit = max(cint(frappe.get_cached_value("Job Type", job_type, "concurrency_limit")), 1)
		for waiting in _waiting_for_key(key, limit):
			if queue_job(waiting) != states.QUEUED:
				break


def dispatch_pending(
	batch_size: int = 500, due_after: datetime | None = None, now: datetime | None = None
) -> int:
	"""Queue the Pending jobs that have become ready. Returns how many were queued."""
	now = now or clock.utc_now()
	if due_after is None:
		condition = "(run_at_utc IS NULL OR run_at_utc <= %(now)s)"
	else:
		condition = "run_at_utc > %(due_after)s AND run_at_utc <= %(now)s"
	queued = 0
	last_seen = ""
	while True:
		candidates = frappe.db.sql_list(
			f"""SELECT name FROM `tabBackground Job`
			WHERE status = 'Pending' AND {condition} AND name > %(last_seen)s
			ORDER BY name LIMIT %(limit)s""",
			{"now": now, "due_after": due_after, "last_seen": last_seen, "limit": batch_size},
		)
		for job in candidates:
			if queue_job(job) == states.QUEUED:
				queued += 1
			frappe.db.commit()
		if len(candidates) < batch_size:
			return queued
		last_seen = candidates[-1]
