"""Running jobs inside Frappe's RQ workers.

Contract:
- ``run_next(token_for, queue_name)`` is what every wake-up token executes. It *claims* the best
  Queued job of the queue (priority, then age: a job gains a level every ``aging_seconds`` so
  Low never starves) with a conditional Queued -> Running move. If nothing is left to claim
  (a second delivery of a token, or a job canceled meanwhile) it does nothing. While more jobs
  of the queue are waiting it keeps claiming them for ``DRAIN_SECONDS`` in the same work horse,
  taking their tokens out of RQ.
- The handler runs as the job's owner with a ``JobContext``. Its own timeout is enforced with
  SIGALRM (``JobTimeout`` raised into the handler); a watchdog thread heartbeats the row, sees
  cancel requests (``JobCanceled`` at the next ``progress``/``raise_if_canceled``, or forced after
  ``cancel_grace_seconds``) and stops the handler if the job was taken away from this worker.
- On success the result (or output reference) is stored in the same transaction as the handler's
  own writes. On failure the handler's writes are rolled back and the error is classified
  (``classification``): retried with backoff (Retrying), or Failed / Timed Out / Dead Letter /
  Canceled. Every move goes through ``transitions.transition`` with the attempt as a guard.
"""

import json
import signal
import socket
import threading
import time
import traceback as traceback_module
from datetime import timedelta

import frappe
from frappe import _
from frappe.utils import cint, flt, get_system_timezone, now_datetime

from dartwing.dartwing_core.background_jobs import classification, dispatch, realtime, registry, states
from dartwing.dartwing_core.background_jobs.backoff import BackoffPolicy, parse_schedule
from dartwing.dartwing_core.background_jobs.context import CancelFlag, JobContext, SiteClock
from dartwing.dartwing_core.background_jobs.errors import JobCanceled, JobTimeout, OutputReference
from dartwing.dartwing_core.background_jobs.logs import jobs_logger
from dartwing.dartwing_core.background_jobs.settings import (
	get_settings,
	paused_job_types,
	paused_queues,
	suspended_organizations,
)
from dartwing.dartwing_core.background_jobs.side_channel import SideChannel
from dartwing.dartwing_core.background_jobs.transitions import transition

MAX_RESULT_BYTES = 64 * 1024
CLAIM_CANDIDATES = 8
WATCHDOG_POLL_SECONDS = 0.25
# How long one work horse keeps taking more jobs of its queue (well under the tokens' RQ timeout
# margin, dispatch.TOKEN_TIMEOUT_MARGIN).
DRAIN_SECONDS = 5.0


def current_token_id() -> str | None:
	from rq import get_current_job

	token = get_current_job()
	return token.id if token else None


def worker_name() -> str:
	from rq import get_current_job

	token = get_current_job()
	name = getattr(token, "worker_name", None) if token else None
	return name or f"{socket.gethostname()}:{__import__('os').getpid()}"


def run_next(token_for: str | None = None, queue_name: str = "default") -> list[str]:
	"""Entry point of every wake-up token. Returns the names of the jobs it ran.

	After its first job the work horse keeps claiming the queue's best Queued job for up to
	``DRAIN_SECONDS``, so a backlog does not pay a fork and a site init per job; the tokens of
	the jobs it takes this way leave RQ once each claim commits.
	"""
	token_id = current_token_id()
	deadline = time.monotonic() + DRAIN_SECONDS
	ran = []
	while not ran or time.monotonic() < deadline:
		frappe.db.rollback()
		job = claim(queue_name, None if ran else token_for, token_id)
		if job and ran and job.original_token != token_id:
			dispatch.remove_token_after_commit(job.original_token)
		frappe.db.commit()
		if not job:
			break
		Execution(job).run()
		ran.append(job.name)
		frappe.local.message_log = []
	return ran


def _claim_candidates(queue: str) -> list[str]:
	now = now_datetime()
	conditions = ["status = 'Queued'", "queue = %(queue)s"]
	values = {"queue": queue, "now": now, "aging": max(get_settings().aging_seconds, 1)}
	if excluded_types := paused_job_types():
		conditions.append("job_type NOT IN %(paused_types)s")
		values["paused_types"] = tuple(excluded_types)
	if excluded_orgs := suspended_organizations():
		conditions.append("organization NOT IN %(suspended)s")
		values["suspended"] = tuple(excluded_orgs)
	return frappe.db.sql_list(
		f"""SELECT name FROM `tabBackground Job` WHERE {" AND ".join(conditions)}
		ORDER BY {dispatch.PRIORITY_SQL} + TIMESTAMPDIFF(SECOND, queued_at, %(now)s) / %(aging)s DESC,
			queued_at ASC
		LIMIT {CLAIM_CANDIDATES}""",
		values,
	)


def claim(queue: str, token_for: str | None, token_id: str | None) -> frappe._dict | None:
	"""Atomically take the best Queued job of ``queue`` for this worker."""
	if queue in paused_queues():
		return None
	for candidate in _claim_candidates(queue):
		locked = frappe.db.sql(
			"""SELECT * FROM `tabBackground Job` WHERE name = %s AND status = 'Queued'
			FOR UPDATE SKIP LOCKED""",
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
			worker=worker,
			values={
				"attempt": attempt,
				"started_at": now,
				"heartbeat": now,
				"worker": worker,
				"rq_job_id": token_id,
				"wait_time": wait_time,
				"cancel_requested": 0,
				"progress_percent": 0,
				"progress_message": None,
			},
		)
		if token_for and token_for != candidate and job.rq_job_id:
			# This token was pushed for another job: hand that job our claimed job's token,
			# which is still waiting in RQ, so every Queued job keeps a token of its own. A
			# worker claiming that job right now holds its lock: skip it rather than wait, as two
			# claims swapping with each other would deadlock.
			if frappe.db.sql(
				"""SELECT name FROM `tabBackground Job` WHERE name = %s AND status = 'Queued' AND rq_job_id = %s
				FOR UPDATE SKIP LOCKED""",
				(token_for, token_id),
			):
				frappe.db.sql(
					"UPDATE `tabBackground Job` SET rq_job_id = %s WHERE name = %s",
					(job.rq_job_id, token_for),
				)
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


class Interrupter:
	"""Raises JobTimeout / JobCanceled into the main thread via SIGALRM."""

	def __init__(self, job: str, timeout: float):
		self.job = job
		self.timeout = timeout
		self.reason = "timeout"
		self.armed = False
		self._previous = None
		self._main_thread = threading.main_thread().ident
		self.usable = threading.current_thread() is threading.main_thread()

	def _on_alarm(self, signum, frame):
		if not self.armed:
			return
		self.armed = False
		if self.reason == "timeout":
			raise JobTimeout(
				_("Background Job {0} ran past its timeout of {1} s").format(self.job, self.timeout)
			)
		raise JobCanceled(self.reason)

	def arm(self):
		if not self.usable:
			return
		self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
		self.armed = True
		signal.setitimer(signal.ITIMER_REAL, self.timeout if self.timeout > 0 else 0)

	def interrupt(self, reason: str):
		"""Called from the watchdog thread."""
		if not self.usable or not self.armed:
			return
		self.reason = reason
		signal.pthread_kill(self._main_thread, signal.SIGALRM)

	def disarm(self):
		if not self.usable:
			return
		self.armed = False
		signal.setitimer(signal.ITIMER_REAL, 0)
		if self._previous is not None:
			signal.signal(signal.SIGALRM, self._previous)


class Watchdog(threading.Thread):
	"""Heartbeats the row, notices cancel requests and lost ownership while the handler runs."""

	def __init__(
		self,
		channel: SideChannel,
		clock: SiteClock,
		cancel_flag: CancelFlag,
		interrupter: Interrupter,
		beat_every: float,
		grace: float,
	):
		super().__init__(name=f"dartwing-watchdog-{channel.job}", daemon=True)
		self.channel = channel
		self.clock = clock
		self.cancel_flag = cancel_flag
		self.interrupter = interrupter
		self.beat_every = max(beat_every, WATCHDOG_POLL_SECONDS)
		self.grace = max(grace, 0.0)
		self._stop_event = threading.Event()
		self.lost = False

	def stop(self):
		self._stop_event.set()
		self.join(timeout=2)

	def run(self):
		last_beat = time.monotonic()
		cancel_seen_at = None
		while not self._stop_event.wait(WATCHDOG_POLL_SECONDS):
			try:
				state = self.channel.poll()
				now = time.monotonic()
				if state is None or state[0] != states.RUNNING or cint(state[1]) != self.channel.attempt:
					self.lost = True
					self.interrupter.interrupt(_("This worker no longer owns the job"))
					return
				if cint(state[2]):
					self.cancel_flag.set()
					cancel_seen_at = cancel_seen_at or now
					if now - cancel_seen_at >= self.grace:
						self.interrupter.interrupt(_("Canceled; the handler did not stop by itself"))
				if now - last_beat >= self.beat_every:
					self.channel.beat(self.clock.now())
					last_beat = now
			except Exception:
				# The database may be restarting: keep trying; the reaper covers a long outage.
				continue


class Execution:
	def __init__(self, job: frappe._dict):
		self.job = job
		self.job_type = frappe.get_cached_doc("Job Type", job.job_type)
		self.settings = get_settings()

	def run(self) -> None:
		job = self.job
		clock = SiteClock(get_system_timezone())
		channel = SideChannel(job.name, job.attempt)
		cancel_flag = CancelFlag()
		interrupter = Interrupter(job.name, flt(job.timeout_seconds))
		watchdog = Watchdog(
			channel,
			clock,
			cancel_flag,
			interrupter,
			self.settings.heartbeat_interval_seconds,
			self.settings.cancel_grace_seconds,
		)
		started = time.monotonic()
		result, error = None, None
		try:
			handler = registry.resolve_handler(self.job_type.handler)
			frappe.set_user(job.owner)
			context = JobContext(job, channel, clock, cancel_flag, realtime.publish_progress)
			watchdog.start()
			interrupter.arm()
			try:
				result = handler(context)
			finally:
				interrupter.disarm()
		except BaseException as exc:
			interrupter.disarm()
			if isinstance(exc, SystemExit | KeyboardInterrupt):
				raise
			error = exc
		finally:
			if watchdog.is_alive():
				watchdog.stop()
			channel.close()
			frappe.set_user("Administrator")
		run_time = round(time.monotonic() - started, 6)

		if watchdog.lost:
			frappe.db.rollback()
			jobs_logger().warning({"event": "ownership_lost", "job": job.name, "attempt": job.attempt})
			return
		if error is None:
			error = self._complete(result, run_time)
		if error is not None:
			self._fail(error, run_time)
		frappe.db.commit()

	def _complete(self, result, run_time: float) -> BaseException | None:
		output_reference = None
		if isinstance(result, OutputReference):
			output_reference, result = str(result), None
		try:
			encoded = None if result is None else json.dumps(result, default=str)
		except (TypeError, ValueError) as exc:
			return frappe.ValidationError(
				_("The handler returned a result that is not JSON: {0}").format(exc)
			)
		if encoded is not None and len(encoded.encode()) > MAX_RESULT_BYTES:
			return frappe.ValidationError(
				_("The result is {0} KB; store large output in a File and return an OutputReference").format(
					len(encoded.encode()) // 1024
				)
			)
		moved = transition(
			self.job.name,
			states.COMPLETED,
			expect={states.RUNNING},
			attempt=self.job.attempt,
			duration=run_time,
			values={
				"result": encoded,
				"output_reference": output_reference,
				"run_time": run_time,
				"progress_percent": 100,
				"error_type": None,
				"error_message": None,
				"traceback": None,
			},
		)
		if moved:
			dispatch.after_job_finished(self.job.name)
		return None

	def _fail(self, error: BaseException, run_time: float) -> None:
		frappe.db.rollback()
		job = self.job
		verdict = classification.classify(error, self.job_type.unknown_errors or "Transient")
		message = str(error) or error.__class__.__name__
		values = {
			"run_time": run_time,
			"error_type": error.__class__.__name__,
			"error_message": message[:2000],
			"traceback": "".join(traceback_module.format_exception(error))[-20000:],
		}
		common = {
			"expect": {states.RUNNING},
			"attempt": job.attempt,
			"duration": run_time,
			"message": message[:500],
		}

		if verdict.kind == classification.CANCELED:
			target, event = states.CANCELED, "Canceled"
			values["error_message"] = None
			values["traceback"] = None
			values["error_type"] = None
			# The log row names who asked for the cancel, not the worker's session user.
			common["actor"] = frappe.db.get_value("Background Job", job.name, "canceled_by")
		elif verdict.kind in (classification.PERMANENT, classification.AUTH_ABORT):
			target, event = states.FAILED, "Failed"
		elif job.attempt <= cint(job.max_retries):
			self._schedule_retry(verdict, values, common)
			return
		elif verdict.kind == classification.TIMEOUT:
			target, event = states.TIMED_OUT, "Timed Out"
		else:
			target, event = states.DEAD_LETTER, "Dead Lettered"

		if verdict.kind == classification.AUTH_ABORT:
			jobs_logger().error(
				{
					"event": "aborted due to authentication error",
					"job": job.name,
					"job_type": job.job_type,
					"status_code": verdict.status_code,
					"attempt": job.attempt,
				}
			)
			common["message"] = _("Aborted due to authentication error (HTTP {0})").format(
				verdict.status_code
			)
		if transition(job.name, target, event=event, values=values, **common):
			dispatch.after_job_finished(job.name)

	def _schedule_retry(self, verdict, values: dict, common: dict) -> None:
		job = self.job
		policy = BackoffPolicy(
			strategy=self.job_type.backoff_strategy or "Exponential",
			base=flt(self.job_type.backoff_base_seconds),
			cap=flt(self.job_type.backoff_cap_seconds),
			schedule=parse_schedule(self.job_type.backoff_schedule),
		)
		delay = policy.delay(job.attempt, verdict.retry_after)
		if verdict.reason == "rate_limited":
			jobs_logger().warning(
				{
					"event": "rate_limited",
					"job": job.name,
					"status_code": verdict.status_code,
					"retry_in": delay,
				}
			)
		next_retry_at = now_datetime() + timedelta(seconds=delay)
		event = "Timed Out" if verdict.kind == classification.TIMEOUT else "Retry Scheduled"
		common["message"] = _("{0}; attempt {1} of {2}, next in {3} s").format(
			common["message"], job.attempt, cint(job.max_retries) + 1, round(delay, 1)
		)
		if not transition(
			job.name,
			states.RETRYING,
			event=event,
			values={**values, "next_retry_at": next_retry_at},
			**common,
		):
			return
		if delay <= 0:
			dispatch.mark_queued(job.name, job.queue, expect={states.RETRYING})
