"""Sharing workers: the sites of one bench take turns, and Frappe's own jobs are not held behind
Dartwing's backlog.

RQ's queues belong to the bench, not the site: every site's wake-up tokens (``dispatch``) and
Frappe's own jobs wait in one FIFO list per queue, and a work horse drains its own site's jobs
for up to ``executor.DRAIN_SECONDS``.

Contract:
- Pushing tokens records the site as waiting on that RQ queue (``tokens.note_site_waiting``: a
  sorted set per RQ queue in the queue Redis, the earliest wait kept).
- ``horse_started(queue)``: a horse of this site is serving it now: the site no longer waits.
- ``should_hand_over(queue, jobs_run)``, asked by a draining horse between jobs: it stops
  draining, and returns True, when
  - another site waits on the queue and this horse has run ``SITE_TURN_JOBS`` jobs: a wake-up
    for each waiting site goes to the front of RQ's queue (so the tokens of this site already
    queued cannot hide it), and this site is noted as waiting again. A site no longer on the
    bench, or waiting for ``STALE_WAIT_SECONDS`` with no horse of it started, is struck off;
  - Frappe's own jobs (any RQ job that is not a Dartwing token) wait among the last
    ``FOREIGN_LOOKUP`` entries of RQ's queue: they move to its front, in their order (looked at
    every ``FOREIGN_CHECK_SECONDS``).
  With one site and nothing else queued it costs one Redis read per job.
"""

import os
import time

import frappe
from frappe.utils.background_jobs import get_queue, get_redis_conn

from dartwing.dartwing_core.background_jobs.tokens import note_site_waiting, token_data, waiting_sites_key

SITE_TURN_JOBS = 10
FOREIGN_LOOKUP = 500
FOREIGN_CHECK_SECONDS = 1.0
TOKEN_MARK = "::dartwing-"
TURN_TIMEOUT_SECONDS = 24 * 3600
# A site noted waiting this long, wake-ups at the front of the queue notwithstanding, is not being
# served by any worker of this queue (gone, broken, or its tokens lost): no horse waits for it.
STALE_WAIT_SECONDS = 300


def _text(value: bytes | str) -> str:
	return value.decode() if isinstance(value, bytes) else value


def _rq_queue(queue: str):
	"""RQ's queue object for ``queue``, made once per work horse."""
	made = frappe.local.flags.dartwing_rq_queues
	if made is None:
		made = frappe.local.flags.dartwing_rq_queues = {}
	if queue not in made:
		made[queue] = get_queue(queue)
	return made[queue]


def horse_started(queue: str) -> None:
	frappe.local.flags.dartwing_foreign_checked = time.monotonic()
	get_redis_conn().zrem(waiting_sites_key(_rq_queue(queue).name), frappe.local.site)


def other_sites_due(jobs_run: int) -> bool:
	"""Whether a horse that ran ``jobs_run`` jobs asks if other sites wait (``look_up``)."""
	return jobs_run >= SITE_TURN_JOBS


def look_up(pipe, queue: str) -> None:
	"""Add the read of the sites waiting on ``queue`` to the caller's pipeline (RQ's connection);
	its answer goes to ``should_hand_over``."""
	pipe.zrange(waiting_sites_key(_rq_queue(queue).name), 0, -1, withscores=True)


def should_hand_over(queue: str, jobs_run: int, waiting_sites: list | None = None) -> bool:
	"""``waiting_sites``: the answer of ``look_up`` when the caller read it; read here otherwise."""
	rq_queue = _rq_queue(queue)
	handed_over = other_sites_due(jobs_run) and _hand_over_to_other_sites(rq_queue, queue, waiting_sites)
	checked = frappe.local.flags.get("dartwing_foreign_checked") or 0.0
	if time.monotonic() - checked >= FOREIGN_CHECK_SECONDS:
		frappe.local.flags.dartwing_foreign_checked = time.monotonic()
		# After the other sites' wake-ups, so Frappe's jobs go ahead of them too.
		return _bring_foreign_jobs_forward(rq_queue) or handed_over
	return handed_over


def _still_waiting(rq_queue, waiting_sites: list) -> list[str]:
	"""The sites of ``waiting_sites`` (``(site, since)``) that can still be served: a site no longer
	on this bench, or one no horse of which has started for ``STALE_WAIT_SECONDS`` although wake-ups
	went to the front of the queue for it, is struck off (its own tokens stay in RQ's queue)."""
	now, gone = time.time(), []
	sites = []
	for entry, since in waiting_sites:
		other = _text(entry)
		if not os.path.exists(os.path.join(frappe.local.sites_path, other, "site_config.json")) or (
			now - since > STALE_WAIT_SECONDS
		):
			gone.append(other)
		else:
			sites.append(other)
	if gone:
		rq_queue.connection.zrem(waiting_sites_key(rq_queue.name), *gone)
	return sites


def _hand_over_to_other_sites(rq_queue, queue: str, waiting_sites: list | None) -> bool:
	site = frappe.local.site
	if waiting_sites is None:
		waiting_sites = rq_queue.connection.zrange(waiting_sites_key(rq_queue.name), 0, -1, withscores=True)
	others = [other for other in _still_waiting(rq_queue, waiting_sites) if other != site]
	if not others:
		return False
	rq_queue.enqueue_many(
		[
			token_data(
				other,
				"Administrator",
				queue,
				None,
				f"{other}::dartwing-turn-{frappe.generate_hash(length=10)}",
				TURN_TIMEOUT_SECONDS,
				at_front=True,
			)
			for other in reversed(others)
		]
	)
	note_site_waiting(rq_queue, site)
	return True


def _bring_foreign_jobs_forward(rq_queue) -> bool:
	connection = rq_queue.connection
	tail = connection.lrange(rq_queue.key, -FOREIGN_LOOKUP, -1)
	foreign = [job_id for job_id in tail if TOKEN_MARK not in _text(job_id)]
	if not foreign:
		return False
	pipe = connection.pipeline()
	for job_id in reversed(foreign):
		pipe.lrem(rq_queue.key, -1, job_id)
		pipe.lpush(rq_queue.key, job_id)
	pipe.execute()
	return True
