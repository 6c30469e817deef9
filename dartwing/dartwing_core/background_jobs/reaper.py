"""The reaper: no job stays stuck because a worker died or Redis forgot a token.

Contract: the upkeep runner (``upkeep``) calls ``recover_dead_running()`` every few seconds and
``repush_lost_queued()`` every minute; ``reap()`` (both) runs from the scheduler every minute as a
fallback (``upkeep.scheduler_fallback``, when no runner passes). Several may run at once: every
move is conditional on the attempt or token it saw, so they are idempotent.
- a Running job whose heartbeat is older than ``stale_heartbeat_seconds``, or whose RQ job has
  failed / stopped / vanished while its heartbeat is a few beats old, or whose worker was told to
  stop (``worker_stopping``) and has not beaten for ``STOPPING_SILENT_SECONDS``, is *recovered*.
  Heartbeats are compared in UTC (``heartbeat_utc`` against ``clock.utc_now()``), so neither a
  daylight-saving jump nor a change of the site's time zone makes a live job look dead or a dead
  one alive. Its worker died under it, so it is handed back without counting an attempt (event
  Recovered, then Requeued: ``restarts.hand_back``), up to ``max_recoveries`` times in a row
  (the Job Type's, else the settings'): past that it goes to Dead Letter, a poison pill. A job
  whose worker was stopping (a restart) is handed back free whatever the count. A job whose work
  horse ended itself (``restarts.abandoned``: heartbeats it could not write, a handler that would
  not stop) is charged that attempt: retried if it has attempts left, else Dead Letter;
- a Queued job whose token RQ no longer holds (Redis flushed or restarted, a push lost after
  commit), or whose token a killed worker took with it before claiming, is pushed again
  (event Requeued). A pass looks at ``PASS_BUDGET`` Queued jobs at most, going on where the
  previous pass stopped (a cursor kept beside the tokens), so its cost does not grow with the
  backlog and every job is looked at within ``backlog / PASS_BUDGET`` passes; a lost token matters
  only once the queue's other tokens are spent, since any token claims the queue's best job.
  When Redis has lost its data (the marker ``TOKENS_MARKER`` kept beside the tokens is gone) the
  pass looks at every Queued job.
Returns ``{"recovered": n, "repushed": n}``.
"""

from datetime import datetime, timedelta, timezone

import frappe
from frappe import _
from frappe.utils import cint, now_datetime
from frappe.utils.background_jobs import get_redis_conn

from dartwing.dartwing_core.background_jobs import clock, dispatch, restarts, states
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger
from dartwing.dartwing_core.background_jobs.settings import get_settings
from dartwing.dartwing_core.background_jobs.transitions import transition

# A token pushed after commit may take a moment to reach Redis; don't re-push younger ones.
QUEUED_GRACE_SECONDS = 15
# How long a token may be "started" in RQ while its job is still Queued before it counts as abandoned.
STARTED_TOKEN_GRACE_SECONDS = 60
_LIVE_TOKEN_STATUSES = {"queued", "started", "deferred", "scheduled"}
# Queued jobs one pass of ``repush_lost_queued`` looks at, at most (~0.2 s of work).
PASS_BUDGET = 20_000
TOKENS_MARKER = "dartwing:reaper:tokens_held"
QUEUED_CURSOR = "dartwing:reaper:queued_cursor"
# A stopping worker's job beats every ``interruption.STOPPING_BEAT_SECONDS``: this much silence
# means the worker was killed.
STOPPING_SILENT_SECONDS = 4


def _token_store_key(key: str) -> str:
	"""A key of this site in the queue's Redis, where the tokens are: lost with them."""
	return f"{key}:{frappe.local.site}"


def _token_statuses(
	rq_job_ids: list[str], for_queued_jobs: bool = False, waiting: dict[str, set] | None = None
) -> dict[str, str | None]:
	"""RQ status of each token (``None`` when Redis does not know it), in one pipelined round trip.

	``for_queued_jobs``: the tokens belong to Queued jobs, and a worker that was killed may have
	left them marked live while nobody holds them. Such a token counts as ``"abandoned"``:
	- *queued* but no longer in its queue: a worker popped it and died before starting it;
	- *started* long ago: its work horse died before it could claim anything (a claim takes
	  milliseconds).
	``waiting`` caches the tokens each RQ queue holds, read once per queue for a whole pass.
	"""
	connection = get_redis_conn()
	pipe = connection.pipeline()
	for rq_job_id in rq_job_ids:
		pipe.hmget(f"rq:job:{rq_job_id}", "status", "started_at", "origin")
	answers = [[_text(value) for value in answer] for answer in pipe.execute()]
	started_before = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(
		seconds=STARTED_TOKEN_GRACE_SECONDS
	)
	waiting = {} if waiting is None else waiting
	if for_queued_jobs:
		for origin in {origin for status, _, origin in answers if status == "queued" and origin}:
			if origin not in waiting:
				waiting[origin] = {_text(i) for i in connection.lrange(f"rq:queue:{origin}", 0, -1)}
	statuses = {}
	for rq_job_id, (status, started_at, origin) in zip(rq_job_ids, answers, strict=True):
		if for_queued_jobs and (
			(status == "queued" and rq_job_id not in waiting.get(origin, ()))
			or (status == "started" and started_at and _rq_time(started_at) < started_before)
		):
			status = "abandoned"
		statuses[rq_job_id] = status
	return statuses


def _text(value: bytes | str | None) -> str | None:
	return value.decode() if isinstance(value, bytes) else value


def _rq_time(value: str) -> datetime:
	return datetime.strptime(value.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")


def recover_dead_running(now: datetime | None = None) -> int:
	settings = get_settings()
	now = now or clock.utc_now()
	suspicious_after = now - timedelta(seconds=max(3 * settings.heartbeat_interval_seconds, 2))
	dead_after = now - timedelta(seconds=settings.stale_heartbeat_seconds)
	stopping_dead_after = now - timedelta(seconds=STOPPING_SILENT_SECONDS)
	candidates = frappe.db.sql(
		"""SELECT name, queue, job_type, attempt, max_retries, recoveries, recoveries_in_a_row,
			worker_stopping, worker, heartbeat, heartbeat_utc, rq_job_id, queued_at
		FROM `tabBackground Job`
		WHERE status = 'Running' AND (heartbeat_utc IS NULL OR heartbeat_utc < %(suspicious)s
			OR (worker_stopping = 1 AND heartbeat_utc < %(stopping_dead)s))""",
		{"suspicious": suspicious_after, "stopping_dead": stopping_dead_after},
		as_dict=True,
	)
	if not candidates:
		return 0
	token_status = _token_statuses([c.rq_job_id or "" for c in candidates])
	dead = [
		job
		for job in candidates
		if token_status.get(job.rq_job_id or "") not in _LIVE_TOKEN_STATUSES
		or job.heartbeat_utc is None
		or job.heartbeat_utc < dead_after
		or (job.worker_stopping and job.heartbeat_utc < stopping_dead_after)
	]
	abandoned = restarts.abandoned(get_redis_conn(), dead)
	recovered = 0
	for job in dead:
		if job.name in abandoned:
			moved = _charge_lost_attempt(job, now)
		else:
			moved = _recover_free(job, settings)
		if moved:
			recovered += 1
			jobs_logger().warning({"event": "recovered", "job": job.name, "attempt": job.attempt})
		frappe.db.commit()
	return recovered


def _recover_free(job: frappe._dict, settings) -> bool:
	"""Its worker died under it: handed back without counting an attempt, unless it keeps doing so."""
	in_a_row = cint(job.recoveries_in_a_row) + (0 if job.worker_stopping else 1)
	limit = restarts.max_recoveries(frappe.get_cached_doc("Job Type", job.job_type), settings)
	if in_a_row > limit:
		message = _(
			"Background Job {0} killed its worker {1} times in a row (max recoveries {2}); not run again"
		).format(job.name, in_a_row, limit)
		return _dead_letter(job, message, {"recoveries_in_a_row": in_a_row})
	if job.worker_stopping:
		message = _(
			"Its worker was told to stop, then fell silent (last heartbeat {0}); handed back without counting an attempt"
		).format(job.heartbeat)
	else:
		message = _(
			"Its worker died (last heartbeat {0}); handed back without counting an attempt ({1} of {2} in a row)"
		).format(job.heartbeat, in_a_row, limit)
	return restarts.hand_back(
		job,
		event=states.EVENT_RECOVERED,
		message=message,
		worker=job.worker,
		values={"recoveries_in_a_row": in_a_row, "error_type": "WorkerLost", "error_message": message},
	)


def _charge_lost_attempt(job: frappe._dict, now: datetime) -> bool:
	"""Its work horse ended itself without recording the attempt: the attempt counts."""
	message = _("Worker lost (last heartbeat {0}); recovered").format(job.heartbeat)
	if restarts.charged_attempts(job) <= cint(job.max_retries):
		moved = transition(
			job.name,
			states.RETRYING,
			expect={states.RUNNING},
			attempt=job.attempt,
			event=states.EVENT_RECOVERED,
			message=message,
			values={
				"next_retry_at": clock.utc_to_site(now),
				"next_retry_utc": now,
				"error_type": "WorkerLost",
				"error_message": message,
			},
		)
		if moved:
			dispatch.mark_queued(job.name, job.queue, expect={states.RETRYING})
		return bool(moved)
	return _dead_letter(job, message)


def _dead_letter(job: frappe._dict, message: str, values: dict | None = None) -> bool:
	moved = transition(
		job.name,
		states.DEAD_LETTER,
		expect={states.RUNNING},
		attempt=job.attempt,
		event=states.EVENT_RECOVERED,
		message=message,
		worker=job.worker,
		values={"worker_stopping": 0, "error_type": "WorkerLost", "error_message": message, **(values or {})},
	)
	if moved:
		dispatch.after_job_finished(job.name)
	return bool(moved)


def repush_lost_queued(batch_size: int = 1000, budget: int = PASS_BUDGET) -> int:
	now = now_datetime()
	older_than = now - timedelta(seconds=QUEUED_GRACE_SECONDS)
	# queued_at is site time: after the site's zone moved west it lies ahead of now; such a row is
	# not young, and is looked at (a second token is harmless: its claim finds nothing).
	zone_moved_after = now + timedelta(minutes=1)
	connection = get_redis_conn()
	marker, cursor = _token_store_key(TOKENS_MARKER), _token_store_key(QUEUED_CURSOR)
	everything = not connection.exists(marker)
	if everything:
		connection.set(marker, 1)
	last_seen = "" if everything else _text(connection.get(cursor)) or ""
	repushed = looked = 0
	waiting: dict[str, set] = {}
	while True:
		limit = batch_size if everything else min(batch_size, budget - looked)
		if limit <= 0:
			connection.set(cursor, last_seen)
			return repushed
		# Forced: on its own MariaDB may read the index by status alone and skip up to the cursor.
		batch = frappe.db.sql(
			"""SELECT name, queue, rq_job_id FROM `tabBackground Job` FORCE INDEX (status_name_index)
			WHERE status = 'Queued' AND (queued_at < %s OR queued_at > %s) AND name > %s
			ORDER BY name LIMIT %s""",
			(older_than, zone_moved_after, last_seen, limit),
			as_dict=True,
		)
		if not batch:
			connection.delete(cursor)
			return repushed
		looked += len(batch)
		token_status = _token_statuses(
			[job.rq_job_id or "" for job in batch], for_queued_jobs=True, waiting=waiting
		)
		for job in batch:
			if token_status.get(job.rq_job_id or "") in _LIVE_TOKEN_STATUSES:
				continue
			if dispatch.mark_queued(
				job.name,
				job.queue,
				expect={states.QUEUED},
				rq_job_id=job.rq_job_id,
				message=_("RQ no longer held this job's token; pushed again"),
			):
				repushed += 1
		frappe.db.commit()
		last_seen = batch[-1].name


def reap() -> dict:
	return {"recovered": recover_dead_running(), "repushed": repush_lost_queued()}
