"""Stopping a running handler from outside it: its timeout, a cancel, a lost job.

Contract:
- ``Interrupter`` raises ``JobTimeout`` into the handler's (main) thread with SIGALRM when the
  job's own timeout passes, or ``JobCanceled`` when the watchdog asks it to.
- ``Watchdog`` is a thread beside the handler: it heartbeats the row on its own connection
  (``side_channel``), sees cancel requests (the handler's ``CancelFlag``, then forced after
  ``cancel_grace_seconds``) and interrupts the handler when the job is no longer this worker's
  (``lost``).
"""

import signal
import threading
import time

from frappe import _
from frappe.utils import cint

from dartwing.dartwing_core.background_jobs import states
from dartwing.dartwing_core.background_jobs.context import CancelFlag, SiteClock
from dartwing.dartwing_core.background_jobs.handler_errors import JobCanceled, JobTimeout
from dartwing.dartwing_core.background_jobs.side_channel import SideChannel

WATCHDOG_POLL_SECONDS = 0.25


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
