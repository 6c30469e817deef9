"""Running one claimed job: the handler, then its outcome.

Contract:
- ``Execution(job).run()`` runs the handler of a job this worker has claimed (``claiming``) as
  the job's owner with a ``JobContext``, under ``interruption.Supervision`` (heartbeats, its own
  timeout, cancel, lost ownership, silent heartbeats, and the forced stop of a handler that does
  not stop when asked).
- On success the result (or output reference) is stored in the same transaction as the handler's
  own writes. On failure the handler's writes are rolled back at once and the error is classified
  (``classification``): retried with backoff (Retrying), or Failed / Timed Out / Dead Letter /
  Canceled; a call that cannot be made (``UnrunnableCall``) goes to Dead Letter at once; an
  interrupted job (its worker is stopping: ``worker_stop``, after the Job Type's shutdown grace) is
  handed back to the queue without counting an attempt (``restarts``). The retry budget counts
  charged attempts (``restarts.charged_attempts``). Every move goes through
  ``transitions.transition`` guarded by the attempt and the RQ token this worker claimed with
  (a conditional UPDATE of the claimed row, ``known_row``), under the job's row lock.
- Fencing: the handler's writes and the outcome commit together or not at all. If the job is no
  longer this worker's (recovered by the reaper while this worker was stopped or slow, for
  instance), the outcome's move does not happen and the whole transaction, handler's writes
  included, is rolled back; nothing is recorded. ``run(commit=False)`` leaves a recorded outcome
  uncommitted for the caller, who commits it (or, failing, rolls it back with the handler's writes).
"""

import json
import time
import traceback as traceback_module
from datetime import timedelta

import frappe
from frappe import _
from frappe.utils import cint, flt, get_system_timezone
from frappe.utils.background_jobs import get_redis_conn

from dartwing.dartwing_core.background_jobs import (
	classification,
	clock,
	dispatch,
	realtime,
	registry,
	restarts,
	running_job,
	states,
	worker_stop,
)
from dartwing.dartwing_core.background_jobs.backoff import BackoffPolicy, parse_schedule
from dartwing.dartwing_core.background_jobs.context import CancelFlag, JobContext, SiteClock
from dartwing.dartwing_core.background_jobs.handler_errors import OutputReference
from dartwing.dartwing_core.background_jobs.interruption import Supervision
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger
from dartwing.dartwing_core.background_jobs.settings import get_settings, job_type
from dartwing.dartwing_core.background_jobs.side_channel import SideChannel
from dartwing.dartwing_core.background_jobs.transitions import transition

MAX_RESULT_BYTES = 64 * 1024


class Execution:
	def __init__(self, job: frappe._dict):
		self.job = job
		self.job_type = job_type(job.job_type)
		self.settings = get_settings()
		self.site, self.sites_path = frappe.local.site, frappe.local.sites_path
		self.started = time.monotonic()

	def run(self, commit: bool = True) -> bool:
		"""Run the handler and record the outcome. Returns whether an outcome was recorded; with
		``commit=False`` it is left in the open transaction for the caller to commit (a draining
		work horse commits it with its next claim)."""
		job = self.job
		site_clock = SiteClock(get_system_timezone())
		channel = SideChannel(job.name, job.attempt, job.rq_job_id)
		cancel_flag = CancelFlag()
		self.redis = get_redis_conn()
		supervision = Supervision(
			job.name,
			channel,
			site_clock,
			cancel_flag,
			timeout=flt(job.timeout_seconds),
			beat_every=self.settings.heartbeat_interval_seconds,
			cancel_grace=self.settings.cancel_grace_seconds,
			stale_after=self.settings.stale_heartbeat_seconds,
			connection_id=_connection_id(),
			on_forced_stop=self._record_forced_stop,
			logger=jobs_logger(),
			stop_watch=worker_stop.watch(),
			shutdown_grace=restarts.shutdown_grace(self.job_type, self.settings),
			on_abandon=self._note_abandoned,
		)
		self.started = time.monotonic()
		result, error = None, None
		try:
			handler = registry.job_runner(self.job_type)
			frappe.set_user(job.owner)
			context = JobContext(job, channel, site_clock, cancel_flag, realtime.publish_progress)
			supervision.start()
			try:
				with running_job.running(context):
					result = handler(context)
			finally:
				supervision.handler_finished()
		except BaseException as exc:
			supervision.handler_finished()
			if isinstance(exc, SystemExit | KeyboardInterrupt):
				raise
			error = exc
			frappe.db.rollback()  # the handler's writes go at once, not after the cleanup below
		finally:
			supervision.stop()
			channel.close()
			frappe.set_user("Administrator")
		run_time = round(time.monotonic() - self.started, 6)

		try:
			recorded = not supervision.lost and self._record(result, error, run_time)
			if not recorded:
				frappe.db.rollback()
				jobs_logger().warning({"event": "ownership_lost", "job": job.name, "attempt": job.attempt})
		finally:
			supervision.release()
		if recorded and commit:
			frappe.db.commit()
		return recorded

	def _record(self, result, error: BaseException | None, run_time: float) -> bool:
		"""The outcome, in the handler's transaction. False (nothing may be committed) when the
		job is no longer this worker's: the final move checks attempt and token under the row lock,
		so the handler's writes and the outcome commit together or not at all."""
		if error is None:
			try:
				encoded, output_reference = _encode_result(result)
			except frappe.ValidationError as exc:
				error = exc
			else:
				return self._complete(encoded, output_reference, run_time)
		return self._fail(error, run_time)

	def _record_forced_stop(self, error: BaseException) -> None:
		"""From the guard thread, while the handler cannot be stopped and its connection was killed:
		record the timeout or cancel on a connection of this thread's own."""
		run_time = round(time.monotonic() - self.started, 6)
		frappe.init(site=self.site, sites_path=self.sites_path)
		try:
			frappe.connect()
			frappe.set_user("Administrator")
			if self._fail(error, run_time):
				frappe.db.commit()
		finally:
			frappe.destroy()

	def _note_abandoned(self) -> None:
		"""From the guard thread: this work horse ends without recording the attempt."""
		restarts.note_abandoned(self.redis, self.site, self.job.name, self.job.attempt)

	def _complete(self, encoded: str | None, output_reference: str | None, run_time: float) -> bool:
		moved = transition(
			self.job.name,
			states.COMPLETED,
			expect={states.RUNNING},
			attempt=self.job.attempt,
			rq_job_id=self.job.rq_job_id,
			known_row=self.job,
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
			dispatch.after_job_finished(self.job.name, moved)
		return bool(moved)

	def _fail(self, error: BaseException, run_time: float) -> bool:
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
			"rq_job_id": job.rq_job_id,
			"known_row": job,
			"duration": run_time,
			"message": message[:500],
		}

		if verdict.kind == classification.INTERRUPTED:
			return restarts.hand_back(
				job,
				event=states.EVENT_INTERRUPTED,
				message=message[:500],
				rq_job_id=job.rq_job_id,
				duration=run_time,
				worker=job.worker,
				values={"run_time": run_time, "recoveries_in_a_row": 0},
			)
		if verdict.kind == classification.CANCELED:
			target, event = states.CANCELED, states.EVENT_CANCELED
			values["error_message"] = None
			values["traceback"] = None
			values["error_type"] = None
			# The log row names who asked for the cancel, not the worker's session user.
			common["actor"] = frappe.db.get_value("Background Job", job.name, "canceled_by")
		elif verdict.kind in (classification.PERMANENT, classification.AUTH_ABORT):
			target, event = states.FAILED, states.EVENT_FAILED
		elif verdict.kind == classification.UNRUNNABLE:
			target, event = states.DEAD_LETTER, states.EVENT_DEAD_LETTERED
		elif restarts.charged_attempts(job) <= cint(job.max_retries):
			return self._schedule_retry(verdict, values, common)
		elif verdict.kind == classification.TIMEOUT:
			target, event = states.TIMED_OUT, states.EVENT_TIMED_OUT
		else:
			target, event = states.DEAD_LETTER, states.EVENT_DEAD_LETTERED

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
		moved = transition(job.name, target, event=event, values=values, **common)
		if not moved:
			return False
		dispatch.after_job_finished(job.name, moved)
		return True

	def _schedule_retry(self, verdict, values: dict, common: dict) -> bool:
		job = self.job
		policy = BackoffPolicy(
			strategy=self.job_type.backoff_strategy or "Exponential",
			base=flt(self.job_type.backoff_base_seconds),
			cap=flt(self.job_type.backoff_cap_seconds),
			schedule=parse_schedule(self.job_type.backoff_schedule),
		)
		charged = restarts.charged_attempts(job)
		delay = policy.delay(charged, verdict.retry_after)
		if verdict.reason == "rate_limited":
			jobs_logger().warning(
				{
					"event": "rate_limited",
					"job": job.name,
					"status_code": verdict.status_code,
					"retry_in": delay,
				}
			)
		next_retry_utc = clock.utc_now() + timedelta(seconds=delay)
		event = (
			states.EVENT_TIMED_OUT if verdict.kind == classification.TIMEOUT else states.EVENT_RETRY_SCHEDULED
		)
		common["message"] = _("{0}; attempt {1} of {2}, next in {3} s").format(
			common["message"], charged, cint(job.max_retries) + 1, round(delay, 1)
		)
		if not transition(
			job.name,
			states.RETRYING,
			event=event,
			values={
				**values,
				"next_retry_at": clock.utc_to_site(next_retry_utc),
				"next_retry_utc": next_retry_utc,
				"recoveries_in_a_row": 0,
			},
			**common,
		):
			return False
		if delay <= 0:
			dispatch.mark_queued(job.name, job.queue, expect={states.RETRYING})
		return True


def _encode_result(result) -> tuple[str | None, str | None]:
	"""(JSON result, output reference) of what a handler returned; ``ValidationError`` if unfit."""
	if isinstance(result, OutputReference):
		return None, str(result)
	try:
		encoded = None if result is None else json.dumps(result, default=str)
	except (TypeError, ValueError) as exc:
		raise frappe.ValidationError(_("The handler returned a result that is not JSON: {0}").format(exc))
	if encoded is not None and len(encoded.encode()) > MAX_RESULT_BYTES:
		raise frappe.ValidationError(
			_("The result is {0} KB; store large output in a File and return an OutputReference").format(
				len(encoded.encode()) // 1024
			)
		)
	return encoded, None


def _connection_id() -> int | None:
	"""The server's id of this thread's database connection (to kill it if the handler hangs)."""
	try:
		return int(frappe.db._conn.thread_id())
	except Exception:
		return None
