"""Whether this work horse's worker was told to stop, whichever of its processes the signal reached.

Contract: ``watch()`` (called by the work horse's main thread before it claims or runs a job)
returns this process's ``StopWatch``, made on the first call. ``StopWatch.requested()`` returns a ``StopRequest`` once
the worker was told to stop and ``None`` before; once seen, a stop stays seen. A stop is seen when:
- the work horse itself received SIGTERM (a whole process group or container was signalled:
  honcho, ``docker kill``): ``immediate``, its running job is handed back at once;
- the worker's main process received SIGTERM or SIGINT while its work horse was busy: RQ's warm
  shutdown writes ``shutdown_requested_date`` in the worker's Redis hash, read here (one HGET);
  the running job gets its shutdown grace;
- the worker's main process is gone (the work horse's parent changed: it was SIGKILLed, e.g. by
  supervisor's ``killasgroup``, which does not reach a work horse RQ started in a session of its
  own): ``immediate``, nobody waits for this work horse any more.
``requested()`` reads Redis and never raises (Redis away: no news); a caller may make that read
in a pipeline of its own (``needs_lookup``, ``look_up``) and pass the answer in. ``signalled()`` answers for
the work horse's own signal only, without I/O, for the guard thread that must never block.
The SIGTERM handler is installed only in an RQ work horse's main thread (elsewhere only what RQ
records counts); it stays until the work horse exits.
This module imports nothing from Frappe.
"""

import os
import signal
import threading
import time
from dataclasses import dataclass

SIGNALLED = "signalled"
SHUTDOWN = "shutdown"
ORPHANED = "orphaned"
WORKER_KEY_PREFIX = "rq:worker:"
_UNREAD = object()


@dataclass(frozen=True)
class StopRequest:
	reason: str  # SIGNALLED, SHUTDOWN or ORPHANED
	immediate: bool
	seen_at: float  # time.monotonic()


class StopWatch:
	def __init__(self, connection=None, worker_name: str | None = None, parent_pid: int | None = None):
		self.connection = connection
		self.worker_key = f"{WORKER_KEY_PREFIX}{worker_name}" if worker_name else None
		self.parent_pid = parent_pid
		self._seen: StopRequest | None = None
		self._signalled: StopRequest | None = None
		self._lock = threading.Lock()
		self._installed = False

	def install(self) -> None:
		"""Take SIGTERM (main thread only): the work horse hands its job back at once."""
		if self._installed or threading.current_thread() is not threading.main_thread():
			return
		signal.signal(signal.SIGTERM, self._on_sigterm)
		self._installed = True

	def _on_sigterm(self, signum, frame):
		if self._signalled is None:
			self._signalled = StopRequest(SIGNALLED, True, time.monotonic())

	def signalled(self) -> StopRequest | None:
		return self._signalled

	def requested(self, shutdown_asked=_UNREAD) -> StopRequest | None:
		"""``shutdown_asked``: the worker's ``shutdown_requested_date`` when the caller read it in a
		pipeline of its own (``look_up``); read here by default."""
		if self._signalled is not None:
			return self._signalled
		if self._seen is None:
			found = self._look(shutdown_asked)
			if found is not None:
				with self._lock:
					self._seen = self._seen or found
		return self._signalled or self._seen

	def needs_lookup(self) -> bool:
		"""Whether ``requested`` still has a Redis read to make."""
		return (
			self._signalled is None
			and self._seen is None
			and self.connection is not None
			and self.worker_key is not None
		)

	def look_up(self, pipe) -> None:
		"""Add the read ``requested`` makes to the caller's Redis pipeline (on RQ's connection)."""
		pipe.hget(self.worker_key, "shutdown_requested_date")

	def _look(self, shutdown_asked=_UNREAD) -> StopRequest | None:
		if self.parent_pid is not None and os.getppid() != self.parent_pid:
			return StopRequest(ORPHANED, True, time.monotonic())
		if self.connection is None or self.worker_key is None:
			return None
		if shutdown_asked is _UNREAD:
			try:
				shutdown_asked = self.connection.hget(self.worker_key, "shutdown_requested_date")
			except Exception:
				return None
		return StopRequest(SHUTDOWN, False, time.monotonic()) if shutdown_asked else None


_watch: StopWatch | None = None


def watch() -> StopWatch:
	"""This process's ``StopWatch`` (made on the first call, from the RQ job being performed)."""
	global _watch
	if _watch is None:
		_watch = _make_watch()
	if _watch.worker_key:
		_watch.install()
	return _watch


def _make_watch() -> StopWatch:
	from rq import get_current_job

	token = get_current_job()
	worker_name = getattr(token, "worker_name", None) if token else None
	if not worker_name:
		return StopWatch()
	return StopWatch(token.connection, worker_name, os.getppid())
