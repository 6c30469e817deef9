"""The work horse's entry point: what every wake-up token runs.

Contract: ``run_next(token_for, queue_name)`` (the function path RQ tokens name,
``tokens.TOKEN_METHOD``: keep it) *claims* the best Queued job of the queue (``claiming``) and
runs it (``execution``). If nothing is left to claim (a second delivery of a token, or a job
canceled meanwhile) it does nothing. While more jobs of the queue are waiting it keeps claiming
them for ``DRAIN_SECONDS`` in the same work horse, taking their tokens out of RQ, unless another
site of the bench or Frappe's own jobs wait for the worker (``worker_sharing``): then it stops
and lets the worker take them. Once its worker was told to stop (``worker_stop``) it claims
nothing more; if that happens before its first claim, the job its token was for gets a fresh
token (``restarts.pass_token_on``).
"""

import time

import frappe
from frappe.utils.background_jobs import get_redis_conn
from redis.exceptions import RedisError

from dartwing.dartwing_core.background_jobs import (
	execution_log,
	job_counters,
	restarts,
	settings,
	tokens,
	turns,
	worker_sharing,
	worker_stop,
)
from dartwing.dartwing_core.background_jobs.claiming import claim, current_token_id
from dartwing.dartwing_core.background_jobs.execution import Execution

# How long one work horse keeps taking more jobs of its queue (well under the tokens' RQ timeout
# margin, tokens.TOKEN_TIMEOUT_MARGIN).
DRAIN_SECONDS = 5.0


def run_next(token_for: str | None = None, queue_name: str = "default") -> list[str]:
	"""Entry point of every wake-up token. Returns the names of the jobs it ran.

	After its first job the work horse keeps claiming the queue's best Queued job for up to
	``DRAIN_SECONDS``, so a backlog does not pay a fork and a site init per job; the tokens of
	the jobs it takes this way leave RQ once each claim commits. It stops sooner when the worker
	is wanted elsewhere (``worker_sharing.should_hand_over``).

	One commit per job: a job's outcome is committed together with the next job's claim (or on its
	own when the horse claims nothing more), in one statement with the start of the next
	transaction (``_commit_and_begin``). Should that claim fail, both roll back, the handler's
	writes with them, and the job is recovered like one whose work horse died.
	"""
	token_id = current_token_id()
	deadline = time.monotonic() + DRAIN_SECONDS
	worker_sharing.horse_started(queue_name)
	ran = []
	frappe.db.rollback()  # a clean transaction; each job's execution ends with a commit or rollback
	with (
		settings.drain_scope(),
		settings.read_once(),
		turns.sole_lines_remembered(),
		job_counters.batched(),
		execution_log.held_until_commit(),
	):
		while not ran or time.monotonic() < deadline:
			try:
				stop = _should_stop(ran, token_for, queue_name, token_id)
			except Exception:
				frappe.db.commit()  # the last job's outcome, whatever these checks did
				raise
			if stop:
				break
			job = claim(queue_name, None if ran else token_for, token_id)
			if job and ran and job.original_token != token_id:
				tokens.remove_token_after_commit(job.original_token)
			_commit_and_begin()
			if not job:
				break
			Execution(job).run(commit=False)
			ran.append(job.name)
			frappe.local.message_log = []
		frappe.db.commit()
	return ran


def _should_stop(ran: list[str], token_for: str | None, queue_name: str, token_id: str | None) -> bool:
	"""Whether this work horse claims nothing more: its worker was told to stop, or (after its
	first job) the worker is wanted elsewhere. The Redis reads of both go in one round trip."""
	stop_watch = worker_stop.watch()
	read_stop = stop_watch.needs_lookup()
	read_sites = bool(ran) and worker_sharing.other_sites_due(len(ran))
	pipe = get_redis_conn().pipeline(transaction=False)
	if read_stop:
		stop_watch.look_up(pipe)
	if read_sites:
		worker_sharing.look_up(pipe, queue_name)
	try:
		answers = pipe.execute() if read_stop or read_sites else []
	except RedisError:
		answers, ran_checks = [None, None], False  # Redis away: no news, as worker_stop reads it
	else:
		ran_checks = True
	if stop_watch.requested(answers.pop(0) if read_stop else None) is not None:
		if not ran:
			restarts.pass_token_on(token_for, queue_name, token_id)
		return True
	return (
		bool(ran)
		and ran_checks
		and worker_sharing.should_hand_over(queue_name, len(ran), answers.pop(0) if read_sites else None)
	)


def _commit_and_begin() -> None:
	"""``frappe.db.commit()`` in one round trip instead of two: Frappe sends COMMIT, then START
	TRANSACTION; ``COMMIT AND CHAIN`` commits and starts the next transaction alike (same isolation
	and access mode). Its callbacks run as ``frappe.db.commit`` runs them; where Frappe holds
	commits back (``_disable_transaction_control``, newer Frappe), its own commit decides."""
	db = frappe.db
	if getattr(db, "_disable_transaction_control", False):
		db.commit()
		return
	db.before_rollback.reset()
	db.after_rollback.reset()
	db.before_commit.run()
	db.sql("COMMIT AND CHAIN")
	db.after_commit.run()
