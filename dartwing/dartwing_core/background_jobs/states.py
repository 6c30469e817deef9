"""The job state machine: the only place that says which status may follow which.

Contract: ``can_transition(a, b)`` answers whether a job may move from status ``a`` to ``b``;
``event_for(a, b)`` names the Job Execution Log event such a move records by default.
``transitions.transition`` (the single writer of statuses) enforces this table atomically.

This module imports nothing from Frappe.
"""

PENDING = "Pending"
QUEUED = "Queued"
RUNNING = "Running"
RETRYING = "Retrying"
COMPLETED = "Completed"
FAILED = "Failed"
TIMED_OUT = "Timed Out"
DEAD_LETTER = "Dead Letter"
CANCELED = "Canceled"

STATUSES = (PENDING, QUEUED, RUNNING, RETRYING, COMPLETED, FAILED, TIMED_OUT, DEAD_LETTER, CANCELED)
TERMINAL = frozenset({COMPLETED, FAILED, TIMED_OUT, DEAD_LETTER, CANCELED})
ACTIVE = frozenset(STATUSES) - TERMINAL
# A job holds its concurrency slot from the moment it is queued until it ends.
HOLDS_CONCURRENCY_SLOT = frozenset({QUEUED, RUNNING, RETRYING})
RETRYABLE_BY_MANAGER = frozenset({FAILED, TIMED_OUT, DEAD_LETTER})
# Parents in these states can never complete, so their dependents fail.
BLOCKS_DEPENDENTS = frozenset({FAILED, TIMED_OUT, DEAD_LETTER, CANCELED})

TRANSITIONS: dict[str, frozenset[str]] = {
	PENDING: frozenset({QUEUED, CANCELED, FAILED}),
	QUEUED: frozenset({RUNNING, PENDING, CANCELED, QUEUED}),
	RUNNING: frozenset({COMPLETED, RETRYING, FAILED, TIMED_OUT, DEAD_LETTER, CANCELED}),
	RETRYING: frozenset({QUEUED, CANCELED}),
	FAILED: frozenset({QUEUED}),
	TIMED_OUT: frozenset({QUEUED}),
	DEAD_LETTER: frozenset({QUEUED}),
	COMPLETED: frozenset(),
	CANCELED: frozenset(),
}

_DEFAULT_EVENTS = {
	(PENDING, QUEUED): "Queued",
	(QUEUED, RUNNING): "Started",
	(QUEUED, PENDING): "Paused",
	(QUEUED, QUEUED): "Requeued",
	(RUNNING, COMPLETED): "Completed",
	(RUNNING, RETRYING): "Retry Scheduled",
	(RUNNING, FAILED): "Failed",
	(PENDING, FAILED): "Failed",
	(RUNNING, TIMED_OUT): "Timed Out",
	(RUNNING, DEAD_LETTER): "Dead Lettered",
	(RETRYING, QUEUED): "Requeued",
	(FAILED, QUEUED): "Requeued",
	(TIMED_OUT, QUEUED): "Requeued",
	(DEAD_LETTER, QUEUED): "Requeued",
}


class IllegalTransition(ValueError):
	def __init__(self, from_status: str, to_status: str):
		self.from_status = from_status
		self.to_status = to_status
		super().__init__(f"A job cannot go from {from_status} to {to_status}")


def can_transition(from_status: str, to_status: str) -> bool:
	return to_status in TRANSITIONS.get(from_status, frozenset())


def check_transition(from_status: str, to_status: str) -> None:
	if not can_transition(from_status, to_status):
		raise IllegalTransition(from_status, to_status)


def sources_of(to_status: str) -> frozenset[str]:
	"""Every status from which ``to_status`` can be reached."""
	return frozenset(src for src, targets in TRANSITIONS.items() if to_status in targets)


def event_for(from_status: str, to_status: str) -> str:
	if to_status == CANCELED:
		return "Canceled"
	return _DEFAULT_EVENTS.get((from_status, to_status), to_status)
