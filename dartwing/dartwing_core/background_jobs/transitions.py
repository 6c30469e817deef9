"""The single writer of a job's status.

Contract: ``transition(job, to_status, ...)`` locks the job row (``SELECT ... FOR UPDATE``),
checks the move against ``states``, updates the row and writes exactly one Job Execution Log
row, all in the caller's transaction; ``job_status_changed`` is published after commit.

- ``expect``: the statuses the caller believes the job is in. If the job has moved on (another
  worker, scheduler or user got there first) nothing is written and ``None`` is returned: the
  caller lost a race, which is normal.
- ``attempt`` / ``rq_job_id``: when given, the move only happens if the job is still on that
  attempt / token, so a worker presumed dead cannot overwrite the outcome of a later attempt and
  two reapers cannot both re-push the same lost token.
- ``locked_row``: the job's row (the columns of ``lock_job``) when the caller's transaction
  already holds its lock, as the one that inserted it does; it is not read again.
- A move the state table forbids raises ``InvalidTransitionError`` (HTTP 409).
- ``values`` may set only existing columns of ``tabBackground Job`` other than ``name``,
  ``status`` and ``modified``; anything else raises ``ValueError`` before anything is written.
  Free text among them is stored through ``stored_text.plain``; setting ``queued_at`` also sets
  ``claim_order`` (``priority.claim_key``), the key the claim orders queued jobs by.

Returns the previous row (``frappe._dict``) when the move happened.
"""

from collections.abc import Collection
from typing import Any

import frappe
from frappe import _
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import (
	clock,
	execution_log,
	job_counters,
	priority,
	realtime,
	states,
	stored_text,
)
from dartwing.dartwing_core.background_jobs.api_errors import InvalidTransitionError
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger

_LOCK_COLUMNS = (
	"name, status, organization, job_type, owner, attempt, worker, correlation_id, concurrency_key, rq_job_id, "
	"queue, run_at, run_at_utc"
)


def lock_job(job: str) -> frappe._dict | None:
	rows = frappe.db.sql(
		f"SELECT {_LOCK_COLUMNS} FROM `tabBackground Job` WHERE name = %s FOR UPDATE", job, as_dict=True
	)
	return rows[0] if rows else None


_RESERVED_COLUMNS = frozenset({"name", "status", "modified"})


def check_values(values: dict[str, Any]) -> None:
	columns = set(frappe.db.get_table_columns("Background Job"))
	unknown = sorted(key for key in values if key not in columns or key in _RESERVED_COLUMNS)
	if unknown:
		raise ValueError(f"transition(values=...) cannot set {', '.join(unknown)}")


def _stored_values(values: dict[str, Any]) -> dict[str, Any]:
	return {
		column: stored_text.plain(value, stored_text.PLAIN_TEXT_COLUMNS[column])
		if column in stored_text.PLAIN_TEXT_COLUMNS and isinstance(value, str)
		else value
		for column, value in values.items()
	}


def _count_finished(job_type: str, status: str, run_time: float | None) -> None:
	try:
		job_counters.count_finished(job_type, status, run_time)
	except Exception:
		# Counters are for monitoring: Redis being away must not fail the job's commit.
		jobs_logger().warning({"event": "counter_update_failed", "job_type": job_type, "status": status})


def transition(
	job: str,
	to_status: str,
	*,
	expect: Collection[str] | None = None,
	attempt: int | None = None,
	rq_job_id: str | None = None,
	event: str | None = None,
	message: str | None = None,
	actor: str | None = None,
	values: dict[str, Any] | None = None,
	duration: float | None = None,
	worker: str | None = None,
	locked_row: frappe._dict | None = None,
) -> frappe._dict | None:
	if values:
		check_values(values)
	row = locked_row or lock_job(job)
	if not row:
		raise frappe.DoesNotExistError(_("Background Job {0} not found").format(job))
	if expect is not None and row.status not in expect:
		return None
	if attempt is not None and row.attempt != attempt:
		return None
	if rq_job_id is not None and row.rq_job_id != rq_job_id:
		return None
	if not states.can_transition(row.status, to_status):
		raise InvalidTransitionError(
			_("Background Job {0} is {1} and cannot become {2}").format(job, _(row.status), _(to_status))
		)

	now = now_datetime()
	updates = {"status": to_status, "modified": now, **_stored_values(values or {})}
	if to_status in states.TERMINAL:
		updates.setdefault("finished_at", now)
	assignments = ", ".join(f"`{column}` = %({column})s" for column in updates)
	if updates.get("queued_at"):
		updates["__queued_epoch"] = priority.epoch_seconds(clock.site_to_utc(updates["queued_at"]))
		assignments += (
			f", `claim_order` = {priority.CLAIM_ORDER_SQL.format(queued_epoch='%(__queued_epoch)s')}"
		)
	frappe.db.sql(
		f"UPDATE `tabBackground Job` SET {assignments} WHERE name = %(__job)s", {**updates, "__job": job}
	)

	event = event or states.event_for(row.status, to_status)
	new_attempt = updates.get("attempt", row.attempt)
	execution_log.record(
		job,
		event,
		organization=row.organization,
		job_type=row.job_type,
		from_status=row.status,
		to_status=to_status,
		attempt=new_attempt,
		actor=actor,
		message=message,
		duration=duration,
		worker=worker or updates.get("worker") or row.worker,
	)
	realtime.publish_status(job, row.owner, row.status, to_status, event)
	if to_status in states.TERMINAL:
		ran = updates.get("run_time") if row.status == states.RUNNING else None
		frappe.db.after_commit.add(lambda: _count_finished(row.job_type, to_status, ran))
	jobs_logger().info(
		{
			"event": event,
			"job": job,
			"job_type": row.job_type,
			"from": row.status,
			"to": to_status,
			"attempt": new_attempt,
			"duration": duration,
			"correlation_id": row.correlation_id,
		}
	)
	return row
