"""What a handler receives: ``handler(ctx)``.

Contract:
- ``ctx.parameters`` (dict), ``ctx.job_id``, ``ctx.organization``, ``ctx.owner``, ``ctx.attempt``
  (1 for the first run), ``ctx.max_retries``, ``ctx.correlation_id``, ``ctx.job_type``.
- ``ctx.progress(percent, message=None)``: records progress at once (not in the handler's
  transaction) and pushes it over Socket.IO; raises ``JobCanceled`` if a cancel was requested.
- ``ctx.checkpoint``: the state saved by an earlier attempt (a dict, empty at first);
  ``ctx.checkpoint(state)`` saves a new one at once, so a retry resumes from there.
- ``ctx.raise_if_canceled()``: raises ``JobCanceled`` if a cancel was requested, and
  ``JobInterrupted`` once the job's worker is stopping and its shutdown grace is over (so does
  ``ctx.progress``); ``ctx.recoveries``: how many runs of this job were handed back without
  counting an attempt (a restart, a worker that died): a handler resumes from ``ctx.checkpoint``.
"""

import copy
import json
import threading
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from dartwing.dartwing_core.background_jobs import clock, stored_text
from dartwing.dartwing_core.background_jobs.handler_errors import JobCanceled, JobInterrupted
from dartwing.dartwing_core.background_jobs.hashing import canonical_json


class SiteClock:
	"""Naive datetimes in the site's time zone (``clock.utc_now()`` read there), usable from any thread."""

	def __init__(self, time_zone: str):
		self.zone = ZoneInfo(time_zone)

	def now(self) -> datetime:
		return clock.utc_now().replace(tzinfo=timezone.utc).astimezone(self.zone).replace(tzinfo=None)


class CancelFlag:
	"""Set by the watchdog thread when the job's cancel is seen, and by the guard thread when the
	job is interrupted (its worker is stopping); read by the handler thread."""

	def __init__(self):
		self._event = threading.Event()
		self.interrupted: str | None = None

	def set(self):
		self._event.set()

	def interrupt(self, message: str):
		self.interrupted = message

	def is_set(self) -> bool:
		return self._event.is_set()


class Checkpoint(dict):
	"""The saved state (a dict) that is also callable to save a new one."""

	def __init__(self, state: dict, save):
		super().__init__(state or {})
		self._save = save

	def __call__(self, state: dict) -> None:
		if not isinstance(state, dict):
			raise TypeError("A checkpoint is a dict of JSON values")
		encoded = canonical_json(state)
		self._save(encoded)
		self.clear()
		self.update(json.loads(encoded))


class JobContext:
	def __init__(self, job, channel, clock: SiteClock, cancel_flag: CancelFlag, publish_progress):
		self.job_id: str = job.name
		self.job_type: str = job.job_type
		self.organization: str = job.organization
		self.owner: str = job.owner
		self.attempt: int = job.attempt
		self.max_retries: int = job.max_retries
		self.recoveries: int = getattr(job, "recoveries", None) or 0
		self.correlation_id: str | None = job.correlation_id
		self.parameters: dict[str, Any] = copy.deepcopy(_load_json(job.parameters))
		self._channel = channel
		self._clock = clock
		self._cancel_flag = cancel_flag
		self._publish_progress = publish_progress
		self.checkpoint = Checkpoint(_load_json(job.checkpoint), self._save_checkpoint)

	def _save_checkpoint(self, encoded: str) -> None:
		self._channel.checkpoint(encoded, self._clock.now())

	@property
	def cancel_requested(self) -> bool:
		return self._cancel_flag.is_set()

	def raise_if_canceled(self) -> None:
		if self._cancel_flag.interrupted:
			raise JobInterrupted(self._cancel_flag.interrupted)
		if self._cancel_flag.is_set():
			raise JobCanceled(f"Background Job {self.job_id} was canceled")

	def progress(self, percent: float, message: str | None = None) -> None:
		percent = max(0.0, min(100.0, float(percent)))
		message = stored_text.plain(message, stored_text.DATA_LENGTH)
		self._channel.progress(percent, message, self._clock.now())
		self._publish_progress(self.job_id, self.owner, percent, message)
		self.raise_if_canceled()


def _load_json(value) -> dict:
	if not value:
		return {}
	if isinstance(value, dict):
		return value
	loaded = json.loads(value)
	return loaded if isinstance(loaded, dict) else {}
