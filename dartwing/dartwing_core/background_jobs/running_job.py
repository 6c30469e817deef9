"""The job running in this process, for code that is not handed a context.

Contract: while the engine runs a job's handler or method, ``current()`` is its ``JobContext``;
``progress(percent, message)`` and ``raise_if_canceled()`` act on that job exactly as
``ctx.progress`` / ``ctx.raise_if_canceled`` do. Outside a job both are no-ops, so a function
written for Dartwing still runs when it is called directly (a test, the console, ``now=True``).
This module imports nothing from Frappe.
"""

from contextlib import contextmanager
from contextvars import ContextVar

_current = ContextVar("dartwing_running_job", default=None)


def current():
	return _current.get()


@contextmanager
def running(context):
	token = _current.set(context)
	try:
		yield context
	finally:
		_current.reset(token)


def progress(percent: float, message: str | None = None) -> None:
	context = _current.get()
	if context is not None:
		context.progress(percent, message)


def raise_if_canceled() -> None:
	context = _current.get()
	if context is not None:
		context.raise_if_canceled()
