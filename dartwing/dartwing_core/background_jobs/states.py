"""The job state machine: the only place that says which status may follow which.

Contract: ``can_transition(a, b)`` answers whether a job may move from status ``a`` to ``b``;
``event_for(a, b)`` names the Job Execution Log event such a move records by default.
``transitions.transition`` (the single writer of statuses) enforces this table atomically.
The status sets (``TERMINAL``, ``FAILED_STATUSES`` ...) and the event names (``EVENTS``, the options
of Job Execution Log's ``event``) are defined here and nowhere else.

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
# Ended without success and not canceled: what "failed" means in metrics, cards and reports
# (a tuple, in a stable order, to pass to SQL's IN).
FAILED_STATUSES = (FAILED, TIMED_OUT, DEAD_LETTER)
RETRYABLE_BY_MANAGER = frozenset(FAILED_STATUSES)
# Parents in these states can never complete, so their dependents fail.
BLOCKS_DEPENDENTS = frozenset({*FAILED_STATUSES, CANCELED})

# Job Execution Log events.
EVENT_SUBMITTED = "Submitted"
EVENT_DEDUPLICATED = "Deduplicated"
EVENT_QUEUED = "Queued"
EVENT_STARTED = "Started"
EVENT_PROGRESS = "Progress"
EVENT_RETRY_SCHEDULED = "Retry Scheduled"
EVENT_COMPLETED = "Completed"
EVENT_FAILED = "Failed"
EVENT_TIMED_OUT = "Timed Out"
EVENT_CANCELED = "Canceled"
EVENT_CANCEL_REQUESTED = "Cancel Requested"
EVENT_DEAD_LETTERED = "Dead Lettered"
EVENT_RECOVERED = "Recovered"
EVENT_INTERRUPTED = "Interrupted"
EVENT_REQUEUED = "Requeued"
EVENT_PAUSED = "Paused"
EVENT_RESUMED = "Resumed"
EVENT_WAITING = "Waiting"
EVENTS = (
	EVENT_SUBMITTED, EVENT_DEDUPLICATED, EVENT_QUEUED, EVENT_STARTED, EVENT_PROGRESS,
	EVENT_RETRY_SCHEDULED, EVENT_COMPLETED, EVENT_FAILED, EVENT_TIMED_OUT, EVENT_CANCELED,
	EVENT_CANCEL_REQUESTED, EVENT_DEAD_LETTERED, EVENT_RECOVERED, EVENT_REQUEUED, EVENT_PAUSED,
	EVENT_RESUMED, EVENT_WAITING, EVENT_INTERRUPTED,
)  # fmt: skip

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
	(PENDING, QUEUED): EVENT_QUEUED,
	(QUEUED, RUNNING): EVENT_STARTED,
	(QUEUED, PENDING): EVENT_PAUSED,
	(QUEUED, QUEUED): EVENT_REQUEUED,
	(RUNNING, COMPLETED): EVENT_COMPLETED,
	(RUNNING, RETRYING): EVENT_RETRY_SCHEDULED,
	(RUNNING, FAILED): EVENT_FAILED,
	(PENDING, FAILED): EVENT_FAILED,
	(RUNNING, TIMED_OUT): EVENT_TIMED_OUT,
	(RUNNING, DEAD_LETTER): EVENT_DEAD_LETTERED,
	(RETRYING, QUEUED): EVENT_REQUEUED,
	(FAILED, QUEUED): EVENT_REQUEUED,
	(TIMED_OUT, QUEUED): EVENT_REQUEUED,
	(DEAD_LETTER, QUEUED): EVENT_REQUEUED,
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
		return EVENT_CANCELED
	return _DEFAULT_EVENTS.get((from_status, to_status), to_status)
