"""Exceptions a job handler raises (or receives) to tell the engine what happened.

Contract:
- ``TransientError``: the attempt failed but a later one may succeed; the engine retries with
  backoff. ``retry_after`` (seconds) overrides the backoff delay for the next attempt.
- ``PermanentError``: retrying cannot help; the job ends ``Failed`` at once.
- ``HttpError``: an HTTP call answered with an error status; classified by status code and
  headers (see ``classification``).
- ``JobCanceled`` / ``JobTimeout`` / ``HeartbeatLost`` / ``JobInterrupted``: raised *into* the
  handler by the engine when the job is canceled, runs past its timeout, cannot be kept alive (its
  heartbeats could not be written, so another worker may soon take it over), or its worker was
  told to stop and the job's shutdown grace is over (the job is handed back to the queue without
  counting an attempt; its checkpoint is kept). They derive from ``BaseException`` so
  that a handler's ``except Exception`` does not swallow them. A handler that does not stop
  (signals masked, blocked in C) is ended with its work horse after a short grace.
- ``UnrunnableCall``: raised by the engine, not by handlers, when a job's parameters no longer
  bind to its function's signature (the function changed after the job was submitted): no attempt
  can succeed, the job goes to Dead Letter at once.
- ``OutputReference``: return one instead of a result when the output lives elsewhere (a File URL
  or any URL).

This module imports nothing from Frappe.
"""

from collections.abc import Mapping


class TransientError(Exception):
	def __init__(self, message: str = "", retry_after: float | None = None):
		super().__init__(message)
		self.retry_after = retry_after


class PermanentError(Exception):
	pass


class HttpError(Exception):
	def __init__(self, status_code: int, message: str = "", headers: Mapping[str, str] | None = None):
		self.status_code = int(status_code)
		self.headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
		super().__init__(message or f"HTTP {self.status_code}")

	@classmethod
	def from_response(cls, response) -> "HttpError":
		"""Build from a ``requests``-style response (``status_code``, ``headers``, ``text``)."""
		body = (getattr(response, "text", "") or "")[:200]
		return cls(response.status_code, f"HTTP {response.status_code}: {body}".strip(), response.headers)

	def header(self, name: str) -> str | None:
		return self.headers.get(name.lower())


class UnrunnableCall(Exception):
	"""The job's function cannot be called with its parameters (its signature changed)."""


class JobCanceled(BaseException):
	"""The job was canceled; the handler should stop (it may clean up in ``finally``)."""


class JobTimeout(BaseException):
	"""The attempt ran past the job type's timeout."""


class HeartbeatLost(BaseException):
	"""The engine could not write the job's heartbeat for too long; the attempt is abandoned."""


class JobInterrupted(BaseException):
	"""The worker is stopping (a restart, a deploy): the attempt is handed back to the queue."""


class OutputReference(str):
	"""A handler's output stored elsewhere: a File URL (``/private/files/...``) or any URL."""
