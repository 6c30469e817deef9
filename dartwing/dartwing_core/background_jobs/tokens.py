"""Wake-up tokens: the RQ jobs that tell a worker "there is work in queue X".

Contract:
- A token is the RQ job ``frappe.enqueue(TOKEN_METHOD, queue=queue, job_id=token, token_for=job,
  queue_name=queue)`` would make; ``new_token_id(job)`` names one, ``token_data`` builds its RQ
  data, and ``push_many(pushes)`` is the one place that enqueues them (after commit, one Redis
  pipeline per queue). Pushing notes the site as waiting on that RQ queue
  (``note_site_waiting``, a sorted set per RQ queue read by ``worker_sharing``).
- ``is_waiting(rq_job_id)``: whether RQ holds the token as still to be taken.
- ``remove_token_after_commit(rq_job_id)``: once the transaction that dequeued a job commits, its
  waiting token leaves RQ (one round trip; its id leaves the queue's list when it is near the
  head, where a drain finds it; a token a worker already started is left alone).
"""

import time

import frappe
from frappe.utils import cint
from frappe.utils.background_jobs import create_job_id, get_queue, get_redis_conn

from dartwing.dartwing_core.background_jobs import after_commit_redis

TOKEN_METHOD = "dartwing.dartwing_core.background_jobs.executor.run_next"
# RQ kills a work horse that outlives its RQ timeout; the engine enforces each job's own timeout
# itself, so the token's RQ timeout only has to be longer than any job's.
TOKEN_TIMEOUT_MARGIN = 300


def new_token_id(job: str) -> tuple[str, str]:
	"""(id given to ``frappe.enqueue``, the site-namespaced id RQ will know it by)."""
	token = f"dartwing-{job}-{frappe.generate_hash(length=8)}"
	return token, create_job_id(token)


def token_timeout(queue: str) -> int:
	cache = frappe.local.flags.setdefault("dartwing_token_timeouts", {})
	if queue not in cache:
		longest = cint(
			frappe.db.sql("SELECT MAX(timeout_seconds) FROM `tabJob Type` WHERE queue = %s", queue)[0][0]
		)
		cache[queue] = longest + TOKEN_TIMEOUT_MARGIN if longest > 0 else 24 * 3600
	return cache[queue]


def push_many(pushes: list[tuple[str, str, str]], at_front: bool = False) -> None:
	"""Enqueue the wake-up tokens ``(job, queue, token)`` once the transaction commits.

	Each token is the RQ job ``frappe.enqueue(TOKEN_METHOD, queue=queue, job_id=token,
	token_for=job, queue_name=queue)`` would make (Frappe's ``execute_job`` runs it in the site as
	this user), built here so that a batch of tokens goes out in one Redis pipeline per queue.
	``at_front`` puts them ahead of what waits in RQ's queue (due work: it is already late).
	"""
	if not pushes:
		return
	site, user = frappe.local.site, frappe.session.user
	by_queue: dict[str, list[tuple[str, str]]] = {}
	for job, queue, token in pushes:
		by_queue.setdefault(queue, []).append((job, token))
	batches = [(queue, token_timeout(queue), tokens) for queue, tokens in by_queue.items()]
	frappe.db.after_commit.add(lambda: _enqueue_tokens(site, user, batches, at_front))


def token_data(
	site: str, user: str, queue: str, token_for: str | None, job_id: str, timeout: int, at_front: bool
):
	"""RQ's data for one wake-up token of ``site`` (``Queue.enqueue_many`` takes a list of them)."""
	from frappe.utils.background_jobs import (
		RQ_JOB_FAILURE_TTL,
		RQ_RESULTS_TTL,
		execute_job,
		truncate_failed_registry,
	)
	from rq import Callback, Queue

	return Queue.prepare_data(
		execute_job,
		kwargs={
			"site": site,
			"user": user,
			"method": TOKEN_METHOD,
			"event": None,
			"job_name": TOKEN_METHOD,
			"is_async": True,
			"kwargs": {"token_for": token_for, "queue_name": queue},
		},
		timeout=timeout,
		result_ttl=frappe.conf.get("rq_results_ttl") or RQ_RESULTS_TTL,
		failure_ttl=frappe.conf.get("rq_job_failure_ttl") or RQ_JOB_FAILURE_TTL,
		job_id=job_id,
		at_front=at_front,
		on_failure=Callback(func=truncate_failed_registry),
	)


def _enqueue_tokens(
	site: str, user: str, batches: list[tuple[str, int, list[tuple[str, str]]]], at_front: bool = False
) -> None:
	for queue, timeout, tokens in batches:
		rq_queue = get_queue(queue)
		rq_queue.enqueue_many(
			[
				token_data(site, user, queue, job, f"{site}::{token}", timeout, at_front)
				for job, token in tokens
			]
		)
		note_site_waiting(rq_queue, site)


def waiting_sites_key(rq_queue_name: str) -> str:
	"""The sorted set of the sites whose tokens wait in an RQ queue (``worker_sharing`` reads it)."""
	return f"dartwing:waiting-sites:{rq_queue_name}"


def note_site_waiting(rq_queue, site: str) -> None:
	rq_queue.connection.zadd(waiting_sites_key(rq_queue.name), {site: time.time()}, nx=True)


def is_waiting(rq_job_id: str) -> bool:
	"""Whether RQ still holds the token as waiting to be taken (one round trip)."""
	from rq.job import Job

	return get_redis_conn().hget(Job.key_for(rq_job_id), "status") in (b"queued", "queued")


def remove_token_after_commit(rq_job_id: str | None) -> None:
	"""Take a job's waiting token out of RQ once the transaction that dequeued the job commits
	(with the transaction's other queue Redis commands: ``after_commit_redis``)."""
	if rq_job_id:
		after_commit_redis.add(lambda pipe: _remove_token(pipe, rq_job_id))


# Takes a waiting token out of RQ in one round trip, if it is still waiting: its id leaves the
# queue's list when it is among the first ``TOKEN_LOOKAHEAD`` (a drain takes the queue's jobs in
# about the order their tokens were pushed, so the token of the job it takes is at the head), and
# its record (with its RQ side keys) is deleted. An id left further down the list, with no record,
# is passed over by the worker that pops it; searching the whole list would scan the backlog, and
# a worker listening on one queue keeps each id it pops without a record in the queue's
# ``:intermediate`` list until RQ's maintenance. A token a worker has started is left alone.
TOKEN_LOOKAHEAD = 32
_DELETE_WAITING_TOKEN = """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then
	return 0
end
local origin = redis.call('HGET', KEYS[1], 'origin')
if origin then
	local queue = 'rq:queue:' .. origin
	for _, waiting in ipairs(redis.call('LRANGE', queue, 0, tonumber(ARGV[2]) - 1)) do
		if waiting == ARGV[1] then
			redis.call('LREM', queue, 1, ARGV[1])
			break
		end
	end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""


def _remove_token(pipe, rq_job_id: str) -> None:
	from rq.job import Job

	pipe.eval(
		_DELETE_WAITING_TOKEN,
		3,
		Job.key_for(rq_job_id),
		Job.dependents_key_for(rq_job_id),
		f"{Job.redis_job_namespace_prefix}:{rq_job_id}:dependencies",  # as RQ's Job.dependencies_key spells it
		rq_job_id,
		TOKEN_LOOKAHEAD,
	)
