"""Claiming: which Queued job a worker takes, and taking it.

Contract:
- ``claim(queue, token_for, token_id)`` takes the next Queued job of ``queue`` for this worker
  with a conditional Queued -> Running move (attempt + 1, ``worker``, ``rq_job_id`` = this token), in
  the caller's transaction. Which job: the queue's best job by priority with aging (one indexed
  key, ``claim_order``, see ``priority``: a job gains a level every ``aging_seconds`` so Low never
  starves) names the priority level served; within that level the organizations take turns
  (``turns``): the least recently served one's best job goes. Each is an index lookup, whatever
  the backlog. Paused queues and job types and suspended organizations are skipped.
  Rows another worker is claiming are skipped (``SKIP LOCKED``), never waited for. Returns the
  claimed row (with ``original_token``, the token the job had while Queued) or ``None``.
- When the token was pushed for another job (``token_for``), that job is handed the claimed job's
  waiting token, or is queued again with a fresh one (event Requeued, its place in line kept)
  where that token no longer waits in RQ, so every Queued job keeps a live token of its own.
"""

import os
import socket

import frappe
from frappe import _
from frappe.utils import cint, now_datetime

from dartwing.dartwing_core.background_jobs import clock, dispatch, organization_caps, states, tokens, turns
from dartwing.dartwing_core.background_jobs.claim_indexes import ORGANIZATION_CLAIM_INDEX, QUEUE_CLAIM_INDEX
from dartwing.dartwing_core.background_jobs.settings import engine_state
from dartwing.dartwing_core.background_jobs.transitions import LOCK_COLUMNS, transition

# Jobs read per claim: enough to pass over those other workers are claiming at the same moment,
# and, where a cap applies, those of organizations at their cap.
CLAIM_CANDIDATES = 3
CAPPED_CLAIM_CANDIDATES = 8
# What the transition and the execution read of the claimed row (not the whole row: a claim is hot).
CLAIMED_COLUMNS = (
	f"{LOCK_COLUMNS}, max_retries, timeout_seconds, parameters, checkpoint, queued_at, recoveries"
)


def current_token_id() -> str | None:
	from rq import get_current_job

	token = get_current_job()
	return token.id if token else None


def worker_name() -> str:
	from rq import get_current_job

	token = get_current_job()
	name = getattr(token, "worker_name", None) if token else None
	return name or f"{socket.gethostname()}:{os.getpid()}"


def _held_back(state: frappe._dict) -> tuple[list[str], dict]:
	conditions, values = [], {}
	if state.paused_job_types:
		conditions.append("job_type NOT IN %(paused_types)s")
		values["paused_types"] = tuple(state.paused_job_types)
	if state.suspended_organizations:
		conditions.append("organization NOT IN %(suspended)s")
		values["suspended"] = tuple(state.suspended_organizations)
	return conditions, values


CANDIDATE_COLUMNS = "name, organization, job_type, priority"


def _claim_candidates(queue: str, state: frappe._dict, limit: int) -> list[frappe._dict]:
	"""The best Queued jobs of ``queue``: ``claim_order`` is priority with aging as one indexed key
	(``priority``), so this reads a few index entries whatever the backlog."""
	held_back, values = _held_back(state)
	conditions = ["status = 'Queued'", "queue = %(queue)s", *held_back]
	return frappe.db.sql(
		f"""SELECT {CANDIDATE_COLUMNS} FROM `tabBackground Job` FORCE INDEX ({QUEUE_CLAIM_INDEX})
		WHERE {" AND ".join(conditions)}
		ORDER BY claim_order ASC, queued_at ASC
		LIMIT {limit}""",
		{**values, "queue": queue},
		as_dict=True,
	)


def _organization_candidates(
	queue: str, priority: str, organization: str, state: frappe._dict, limit: int
) -> list[frappe._dict]:
	"""The best Queued jobs of one organization in one line of ``queue`` (an index range)."""
	held_back, values = _held_back(state)
	conditions = [
		"status = 'Queued'",
		"queue = %(queue)s",
		"organization = %(organization)s",
		"priority = %(priority)s",
		*held_back,
	]
	return frappe.db.sql(
		f"""SELECT {CANDIDATE_COLUMNS} FROM `tabBackground Job` FORCE INDEX ({ORGANIZATION_CLAIM_INDEX})
		WHERE {" AND ".join(conditions)}
		ORDER BY claim_order ASC, queued_at ASC
		LIMIT {limit}""",
		{**values, "queue": queue, "organization": organization, "priority": priority},
		as_dict=True,
	)


def _candidates_in_turn(
	queue: str, state: frappe._dict, capped: bool
) -> list[tuple[frappe._dict, frappe._dict | None]]:
	"""``(job, turn)`` to try in order: the jobs of the organization whose turn it is in the line of
	the queue's best job (``turns``), then the queue's best jobs (whose claim marks their
	organization's turn by its key). Where a cap applies (``capped``) the next organizations in
	turn follow the first, as it may be at its cap. A ``turn`` is the organization's row (``name``)
	with what the claim knows for ``turns.mark_served``: whether it is the only one waiting in the
	line (``sole``) and whether another of its jobs is known to wait there after this one (``more``)."""
	limit = CAPPED_CLAIM_CANDIDATES if capped else CLAIM_CANDIDATES
	best = _claim_candidates(queue, state, limit)
	if not best or not state.settings.fair_share:
		return [(job, None) for job in best]
	line = best[0].priority
	in_turn = []
	waiting = turns.waiting_in_line(queue, line, best[0].organization, state.suspended_organizations)
	for turn in waiting:
		if turn.organization == best[0].organization:
			jobs = [job for job in best if job.organization == turn.organization and job.priority == line]
			complete = False
		else:
			jobs = _organization_candidates(queue, line, turn.organization, state, limit)
			complete = len(jobs) < limit
		if not jobs:
			turns.mark_idle([turn.name])
			continue
		in_turn += [
			(
				job,
				frappe._dict(
					name=turn.name,
					sole=len(waiting) == 1,
					more=True if n + 1 < len(jobs) else (False if complete else None),
				),
			)
			for n, job in enumerate(jobs)
		]
		if not capped:
			break
	return in_turn + [(job, None) for job in best]


def claim(queue: str, token_for: str | None, token_id: str | None) -> frappe._dict | None:
	"""Atomically take the best Queued job of ``queue`` for this worker."""
	state = engine_state()
	if queue in state.paused_queues:
		return None
	capped = organization_caps.applies(queue, state)
	at_cap, turns_given_away = set(), set()
	for row, turn in _candidates_in_turn(queue, state, capped):
		candidate = row.name
		if capped and (
			(row.organization, row.job_type) in at_cap or organization_caps.at_cap(row, queue, state)
		):
			# Held back by its organization's cap: it stays Queued, and the organization's turn goes
			# to the next one.
			at_cap.add((row.organization, row.job_type))
			if turn and turn.name not in turns_given_away:
				turns_given_away.add(turn.name)
				turns.mark_served(frappe._dict(turn, more=True, sole=False), row)
			continue
		locked = frappe.db.sql(
			f"""SELECT {CLAIMED_COLUMNS} FROM `tabBackground Job` FORCE INDEX (PRIMARY)
			WHERE name = %s AND status = 'Queued' FOR UPDATE SKIP LOCKED""",
			candidate,
			as_dict=True,
		)
		if not locked:
			continue
		job = locked[0]
		now = now_datetime()
		worker = worker_name()
		attempt = cint(job.attempt) + 1
		wait_time = (now - job.queued_at).total_seconds() if job.queued_at else 0
		transition(
			candidate,
			states.RUNNING,
			expect={states.QUEUED},
			locked_row=job,
			worker=worker,
			values={
				"attempt": attempt,
				"started_at": now,
				"heartbeat": now,
				"heartbeat_utc": clock.utc_now(),
				"worker": worker,
				"rq_job_id": token_id,
				"wait_time": wait_time,
				"cancel_requested": 0,
				"worker_stopping": 0,
				"progress_percent": 0,
				"progress_message": None,
			},
		)
		if token_for and token_for != candidate:
			_hand_token_to(token_for, token_id, job.rq_job_id, queue)
		turns.mark_served(turn, job)
		job.update(
			attempt=attempt,
			started_at=now,
			worker=worker,
			rq_job_id=token_id,
			status=states.RUNNING,
			original_token=job.rq_job_id,
		)
		return job
	return None


def _hand_token_to(token_for: str, token_id: str | None, claimed_token: str | None, queue: str) -> None:
	"""This token was pushed for ``token_for``, another job: so that every Queued job keeps a token
	of its own, that job takes the claimed job's token where it still waits in RQ, or is queued
	again with a fresh one (``dispatch.mark_queued``, in its place in line) where it does not: Redis
	lost it, or a worker popped it and died. A worker claiming that job right now holds its lock:
	it is skipped rather than waited for, as two claims swapping with each other would deadlock."""
	held = frappe.db.sql(
		f"""SELECT {LOCK_COLUMNS}, queued_at FROM `tabBackground Job` FORCE INDEX (PRIMARY)
		WHERE name = %s AND status = 'Queued' AND rq_job_id = %s FOR UPDATE SKIP LOCKED""",
		(token_for, token_id),
		as_dict=True,
	)
	if not held:
		return
	if claimed_token and tokens.is_waiting(claimed_token):
		frappe.db.sql(
			"UPDATE `tabBackground Job` SET rq_job_id = %s WHERE name = %s", (claimed_token, token_for)
		)
		return
	dispatch.mark_queued(
		token_for,
		queue,
		expect={states.QUEUED},
		rq_job_id=token_id,
		locked_row=held[0],
		values={"queued_at": held[0].queued_at},
		message=_("The token it was handed no longer waited in RQ; pushed again"),
	)
