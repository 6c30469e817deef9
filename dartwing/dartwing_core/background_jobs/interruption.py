"""Keeping a running handler alive and stopping it from outside: timeout, cancel, restart, lost job,
silence.

Contract (``Supervision``, around one handler call):
- A ``Watchdog`` thread heartbeats the row on its own connection (``side_channel``), notices
  cancel requests (sets the handler's ``CancelFlag``) and notices when the job is no longer this
  worker's (``lost``). It also watches whether the worker was told to stop (``worker_stop``):
  once it was, the row is marked ``worker_stopping`` and beats every ``STOPPING_BEAT_SECONDS``,
  so that if the worker is then killed the reaper sees at once that it went silent.
- A guard thread, which does no I/O and so never hangs, decides when the handler must stop:
  at the job's own timeout (``JobTimeout``), ``cancel_grace_seconds`` after a cancel was seen
  (``JobCanceled``), ``shutdown_grace`` after its worker was told to stop, or at once when the work
  horse itself received SIGTERM (``JobInterrupted``), when the job was lost (``OwnershipLost``),
  or when no heartbeat could be
  written for ``stale_heartbeat_seconds / 2`` (two beats at least, 3/4 of it at most:
  ``HeartbeatLost``), before the reaper may hand the job to another worker.
- It first raises that exception into the handler (``Interrupter``: SIGALRM sent to the main
  thread; the interval timer, which RQ's own death penalty uses, is left alone, and a SIGALRM the
  engine did not send goes to the handler installed before). If the handler has not returned
  ``stop_grace`` seconds later (signals masked, blocked in C), the work horse is ended: the
  handler's database connection is killed (the server rolls its transaction back), a timeout or
  cancel is recorded (an interrupted job handed back) on a fresh connection (``on_forced_stop``),
  and the process exits. A silent or lost job is not recorded: the reaper recovers it. Before a
  forced stop that is not an interruption or a loss, ``on_abandon`` notes that the work horse
  ends itself (so the reaper charges that attempt). The exit happens within a bounded time
  whatever the database does: an interrupted handler's work horse is gone ``INTERRUPT_STOP_GRACE``
  + ``INTERRUPT_RECORD_SECONDS`` after the interruption at most.
"""

import _thread
import os
import signal
import threading
import time
from collections.abc import Callable

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs import side_channel, worker_stop
from dartwing.dartwing_core.background_jobs.context import CancelFlag, SiteClock
from dartwing.dartwing_core.background_jobs.handler_errors import (
	HeartbeatLost,
	JobCanceled,
	JobInterrupted,
	JobTimeout,
)
from dartwing.dartwing_core.background_jobs.side_channel import SideChannel

WATCHDOG_POLL_SECONDS = 0.25
GUARD_TICK_SECONDS = 0.05
MAX_STOP_GRACE_SECONDS = 2.0
# How long a forced stop may spend recording a timeout or cancel before the process exits anyway.
FORCED_RECORD_SECONDS = 10.0
FORCED_EXIT_CODE = 70
# A stopping worker's job beats this often, so that its silence is noticed within seconds.
STOPPING_BEAT_SECONDS = 1.0
# An interrupted handler that does not stop is cut off after this, and its hand-back recorded
# within the next bound: a worker exits within its grace + 5 s.
INTERRUPT_STOP_GRACE = 1.0
INTERRUPT_RECORD_SECONDS = 2.0


class OwnershipLost(BaseException):
	"""The job was taken away from this worker (recovered by the reaper, or canceled and requeued)."""


class Interrupter:
	"""Raises an exception into the main thread (where the handler runs) with SIGALRM."""

	def __init__(self):
		self.usable = threading.current_thread() is threading.main_thread()
		self._main_thread = threading.main_thread().ident
		self._lock = threading.Lock()
		self._pending: BaseException | None = None
		self._sent = 0
		self._received = 0
		self._armed = False
		self._installed = False
		self._previous = None

	def install(self):
		if self.usable:
			self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
			self._installed = True

	def arm(self):
		with self._lock:
			self._armed = True

	def disarm(self):
		"""No exception is raised into the main thread after this returns."""
		with self._lock:
			self._armed = False

	def uninstall(self):
		if self._installed:
			self._installed = False
			signal.signal(signal.SIGALRM, self._previous if self._previous is not None else signal.SIG_DFL)

	def interrupt(self, exc: BaseException) -> bool:
		"""From another thread: raise ``exc`` in the handler. False if it cannot be delivered."""
		with self._lock:  # sent under the lock: once ``disarm`` returns, nothing more is on its way
			if not (self.usable and self._installed and self._armed):
				return False
			self._pending = exc
			self._sent += 1
			signal.pthread_kill(self._main_thread, signal.SIGALRM)
		return True

	def _on_alarm(self, signum, frame):
		with self._lock:
			ours = self._received < self._sent
			if ours:
				self._received = self._sent
				exc, self._pending = self._pending, None
				raise_now = self._armed and exc is not None
				self._armed = self._armed and not raise_now
		if not ours:
			# RQ's death penalty, or anyone else's alarm: theirs to handle.
			if callable(self._previous):
				self._previous(signum, frame)
			return
		if raise_now:
			raise exc


class Watchdog:
	"""Heartbeats the row, notices cancel requests and lost ownership while the handler runs.

	Its database calls may hang (a lock wait, a server that does not answer); the guard thread reads
	what it last achieved (``last_beat_ok``) and acts on its own.
	"""

	def __init__(
		self,
		channel: SideChannel,
		clock: SiteClock,
		cancel_flag: CancelFlag,
		beat_every: float,
		logger,
		stop_watch: worker_stop.StopWatch | None = None,
	):
		self.channel = channel
		self.stop_watch = stop_watch
		self.stop_seen: worker_stop.StopRequest | None = None
		self.clock = clock
		self.cancel_flag = cancel_flag
		self.beat_every = max(beat_every, WATCHDOG_POLL_SECONDS)
		self.logger = logger
		self._stop_event = threading.Event()
		self.lost = False
		self.cancel_seen_at: float | None = None
		self.last_beat_ok = time.monotonic()
		self.failures = 0

	def stop(self):
		self._stop_event.set()

	def run(self):
		last_beat = time.monotonic()
		while not self._stop_event.wait(WATCHDOG_POLL_SECONDS):
			try:
				state = self.channel.poll()
				now = time.monotonic()
				if state is None or not state[0]:
					self.lost = True
					return
				if state[1] and self.cancel_seen_at is None:
					self.cancel_flag.set()
					self.cancel_seen_at = now
				if self.stop_seen is None and self.stop_watch is not None:
					self.stop_seen = self.stop_watch.requested()
					if self.stop_seen is not None:
						if not self.channel.mark_stopping(self.clock.now()):
							self.lost = True
							return
						last_beat = self.last_beat_ok = time.monotonic()
				beat_every = (
					min(self.beat_every, STOPPING_BEAT_SECONDS) if self.stop_seen else self.beat_every
				)
				if now - last_beat >= beat_every:
					if not self.channel.beat(self.clock.now()):
						self.lost = True
						return
					last_beat = self.last_beat_ok = time.monotonic()
				self.failures = 0
			except Exception as exc:
				self.failures += 1
				if self.failures == 1 or self.failures % 20 == 0:
					self.logger.warning(
						{
							"event": "heartbeat_failed",
							"job": self.channel.job,
							"attempt": self.channel.attempt,
							"failures": self.failures,
							"error": repr(exc)[:300],
						}
					)


def _message_templates() -> dict[str, str]:
	"""The guard's messages in the current language, translated once per work horse and language."""
	lang = getattr(frappe.local, "lang", None)
	kept = getattr(frappe.local, "dartwing_supervision_messages", None)
	if kept is None or kept[0] != lang:
		kept = frappe.local.dartwing_supervision_messages = (
			lang,
			{
				"timeout": _("Background Job {0} ran past its timeout of {1} s"),
				"lost": _("This worker no longer owns the job"),
				"canceled": _("Canceled; the handler did not stop by itself"),
				"silent": _(
					"No heartbeat could be written for {0} s; stopped before the job could be recovered elsewhere"
				),
				worker_stop.SIGNALLED: _("Its work horse received SIGTERM: handed back at once"),
				worker_stop.SHUTDOWN: _("Its worker was told to stop: handed back after a grace of {0} s"),
				worker_stop.ORPHANED: _("Its worker process is gone: handed back at once"),
			},
		)
	return kept[1]


class Supervision:
	"""The watchdog and the guard around one handler call (see the module's contract)."""

	def __init__(
		self,
		job: str,
		channel: SideChannel,
		clock: SiteClock,
		cancel_flag: CancelFlag,
		*,
		timeout: float,
		beat_every: float,
		cancel_grace: float,
		stale_after: float,
		connection_id: int | None,
		on_forced_stop: Callable[[BaseException], None],
		logger,
		stop_watch: worker_stop.StopWatch | None = None,
		shutdown_grace: float = 0.0,
		on_abandon: Callable[[], None] | None = None,
	):
		self.job = job
		self.channel = channel
		self.timeout = timeout
		self.cancel_grace = max(cancel_grace, 0.0)
		# Two missed beats at least, but always well inside the stale limit.
		self.silent_limit = min(max(stale_after / 2, beat_every * 2), stale_after * 0.75)
		self.stop_grace = min(MAX_STOP_GRACE_SECONDS, max(stale_after / 4, 0.5))
		self.connection_id = connection_id
		self.on_forced_stop = on_forced_stop
		self.on_abandon = on_abandon
		self.logger = logger
		self.stop_watch = stop_watch
		self.shutdown_grace = max(shutdown_grace, 0.0)
		self.cancel_flag = cancel_flag
		self.interrupter = Interrupter()
		self.watchdog = Watchdog(channel, clock, cancel_flag, beat_every, logger, stop_watch)
		self._finished = threading.Event()
		self.stop_reason: BaseException | None = None
		self.started = 0.0
		# Translated here: the guard thread has no Frappe context.
		templates = _message_templates()
		self._messages = {
			**templates,
			"timeout": templates["timeout"].format(job, timeout),
			worker_stop.SHUTDOWN: templates[worker_stop.SHUTDOWN].format(f"{self.shutdown_grace:g}"),
		}

	@property
	def lost(self) -> bool:
		return self.watchdog.lost or isinstance(self.stop_reason, OwnershipLost)

	def start(self):
		self.started = time.monotonic()
		self.interrupter.install()
		self.interrupter.arm()
		# Low-level threads: ``threading.Thread.start`` waits until the new thread runs, which on a
		# busy machine costs every job a scheduling delay; nothing ever joins these two.
		_thread.start_new_thread(self.watchdog.run, ())
		_thread.start_new_thread(self._guard_loop, ())

	def handler_finished(self):
		"""Called by the main thread as soon as the handler returned or raised."""
		self.interrupter.disarm()
		self._finished.set()

	def stop(self):
		self.handler_finished()
		self.watchdog.stop()

	def release(self):
		"""After the outcome is recorded: give SIGALRM back to whoever had it (RQ)."""
		self.interrupter.uninstall()

	def _reason_to_stop(self, now: float) -> BaseException | None:
		if self.timeout > 0 and now - self.started >= self.timeout:
			return JobTimeout(self._messages["timeout"])
		if self.watchdog.lost:
			return OwnershipLost(self._messages["lost"])
		seen = self.watchdog.cancel_seen_at
		if seen is not None and now - seen >= self.cancel_grace:
			return JobCanceled(self._messages["canceled"])
		stop = (self.stop_watch.signalled() or self.watchdog.stop_seen) if self.stop_watch else None
		if stop is not None and (stop.immediate or now - stop.seen_at >= self.shutdown_grace):
			self.cancel_flag.interrupt(self._messages[stop.reason])
			return JobInterrupted(self._messages[stop.reason])
		silent = now - self.watchdog.last_beat_ok
		if silent >= self.silent_limit:
			return HeartbeatLost(self._messages["silent"].format(round(silent, 1)))
		return None

	def _guard_loop(self):
		asked_at = None
		while not self._finished.wait(GUARD_TICK_SECONDS):
			now = time.monotonic()
			if self.stop_reason is None:
				reason = self._reason_to_stop(now)
				if reason is None:
					continue
				self.stop_reason, asked_at = reason, now
				self.interrupter.interrupt(reason)
			elif now - asked_at >= self._stop_grace_for(self.stop_reason) and not self._finished.is_set():
				self._force_stop(self.stop_reason)
				return

	def _stop_grace_for(self, reason: BaseException) -> float:
		if isinstance(reason, JobInterrupted):
			return min(self.stop_grace, INTERRUPT_STOP_GRACE)
		return self.stop_grace

	def _force_stop(self, reason: BaseException):
		"""The handler did not stop when asked: end the work horse (see the module's contract)."""
		record = isinstance(reason, JobTimeout | JobCanceled | JobInterrupted)
		if isinstance(reason, JobInterrupted):
			deadline = INTERRUPT_RECORD_SECONDS
		else:
			deadline = FORCED_RECORD_SECONDS if record else max(self.stop_grace, 0.5)
		backstop = threading.Timer(deadline, os._exit, args=(FORCED_EXIT_CODE,))
		backstop.daemon = True
		backstop.start()
		self.logger.error(
			{
				"event": "handler_forced_stop",
				"job": self.job,
				"attempt": self.channel.attempt,
				"reason": reason.__class__.__name__,
				"pid": os.getpid(),
			}
		)
		if self.on_abandon is not None and not isinstance(reason, JobInterrupted | OwnershipLost):
			try:
				self.on_abandon()
			except Exception as exc:
				self.logger.error(
					{"event": "forced_stop_note_failed", "job": self.job, "error": repr(exc)[:300]}
				)
		try:
			if self.connection_id is not None:
				side_channel.kill_connection(self.channel.params, self.connection_id)
		except Exception as exc:
			self.logger.error({"event": "forced_stop_kill_failed", "job": self.job, "error": repr(exc)[:300]})
		if record:
			try:
				self.on_forced_stop(reason)
			except Exception as exc:
				self.logger.error(
					{"event": "forced_stop_record_failed", "job": self.job, "error": repr(exc)[:300]}
				)
		os._exit(FORCED_EXIT_CODE)
