"""The single writer of a job's status.

Contract: ``transition(job, to_status, ...)`` (``transition_many`` for a batch) locks the job
row (``SELECT ... FOR UPDATE``), checks the move against ``states``, updates the row and writes
exactly one Job Execution Log row, all in the caller's transaction; ``job_status_changed`` is
published after commit.

- ``expect``: the statuses the caller believes the job is in. If the job has moved on (another
  worker, scheduler or user got there first) nothing is written and ``None`` is returned: the
  caller lost a race, which is normal.
- ``attempt`` / ``rq_job_id``: when given, the move only happens if the job is still on that
  attempt / token, so a worker presumed dead cannot overwrite the outcome of a later attempt and
  two reapers cannot both re-push the same lost token.
- ``locked_row``: the job's row (the columns of ``lock_job``) when the caller's transaction
  already holds its lock, as the one that inserted it does; it is not read again.
- ``known_row``: the job's row (the columns of ``lock_job``) as the caller read it earlier, without
  holding its lock since (a worker's claimed row). The move is then one conditional UPDATE on
  status (``expect``, one status), ``attempt`` and ``rq_job_id``, which takes the lock; no row
  changed means the job moved on, and ``None`` is returned as above. Its ``has_dependents`` is
  checked the same way: if a job was submitted meanwhile to wait for this one, the move is made
  under the row lock instead, and the row returned says so.
- A move the state table forbids raises ``InvalidTransitionError`` (HTTP 409).
- ``values`` may set only existing columns of ``tabBackground Job`` other than ``name``,
  ``status`` and ``modified``; anything else raises ``ValueError`` before anything is written.
  Free text among them is stored through ``stored_text.plain``; setting ``queued_at`` also sets
  ``claim_order`` (``priority.claim_key``), the key the claim orders queued jobs by. A move to
  Queued also marks the job's organization waiting in its line (``turns.note_queued``).

A new job's first status is its insert's (``submit``): Pending, or Queued when nothing holds it
back, whose Pending -> Queued move ``record_inserted_move`` logs and announces as ``transition``
would.

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
	organization_caps,
	priority,
	realtime,
	states,
	stored_text,
	turns,
)
from dartwing.dartwing_core.background_jobs.api_errors import InvalidTransitionError
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger

LOCK_COLUMNS = (
	"name, status, organization, job_type, owner, attempt, worker, correlation_id, concurrency_key, rq_job_id, "
	"queue, priority, run_at, run_at_utc, has_dependents"
)


def lock_job(job: str) -> frappe._dict | None:
	rows = frappe.db.sql(
		f"SELECT {LOCK_COLUMNS} FROM `tabBackground Job` FORCE INDEX (PRIMARY) WHERE name = %s FOR UPDATE",
		job,
		as_dict=True,
	)
	return rows[0] if rows else None


_RESERVED_COLUMNS = frozenset({"name", "status", "modified"})


# The job table's columns per site, read once per process (a column that is not there yet is
# looked up again before it is refused, so a migration during the process's life is seen).
_job_columns: dict[str, frozenset[str]] = {}


def _job_table_columns(refresh: bool = False) -> frozenset[str]:
	site = frappe.local.site
	if refresh or site not in _job_columns:
		_job_columns[site] = frozenset(frappe.db.get_table_columns("Background Job"))
	return _job_columns[site]


def check_values(values: dict[str, Any]) -> None:
	columns = _job_table_columns()
	if any(key not in columns for key in values):
		columns = _job_table_columns(refresh=True)
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


def _may_move(
	row: frappe._dict,
	to_status: str,
	expect: Collection[str] | None,
	attempt: int | None = None,
	rq_job_id: str | None = None,
) -> bool:
	if expect is not None and row.status not in expect:
		return False
	if attempt is not None and row.attempt != attempt:
		return False
	if rq_job_id is not None and row.rq_job_id != rq_job_id:
		return False
	if not states.can_transition(row.status, to_status):
		raise InvalidTransitionError(
			_("Background Job {0} is {1} and cannot become {2}").format(row.name, _(row.status), _(to_status))
		)
	return True


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
	known_row: frappe._dict | None = None,
) -> frappe._dict | None:
	if values:
		check_values(values)
	if known_row is not None:
		return _conditional_move(
			known_row,
			to_status,
			expect,
			attempt,
			rq_job_id,
			values or {},
			event,
			message,
			actor,
			duration,
			worker,
		)
	row = locked_row or lock_job(job)
	if not row:
		raise frappe.DoesNotExistError(_("Background Job {0} not found").format(job))
	if not _may_move(row, to_status, expect, attempt, rq_job_id):
		return None
	_write([row], to_status, values or {}, {}, event, message, actor, duration, worker)
	return row


def _conditional_move(
	known_row: frappe._dict,
	to_status: str,
	expect: Collection[str] | None,
	attempt: int | None,
	rq_job_id: str | None,
	values: dict[str, Any],
	event: str | None,
	message: str | None,
	actor: str | None,
	duration: float | None,
	worker: str | None,
) -> frappe._dict | None:
	if not expect or len(expect) != 1:
		raise ValueError("transition(known_row=...) needs exactly one expected status")
	(from_status,) = expect
	row = frappe._dict(known_row, status=from_status)
	if attempt is not None:
		row.attempt = attempt
	if rq_job_id is not None:
		row.rq_job_id = rq_job_id
	if not _may_move(row, to_status, expect):
		return None
	# ``has_dependents`` as the caller read it may be stale (a job submitted meanwhile to wait for
	# this one): the move happens only while it still holds, so the row returned tells it truly.
	guard = (
		"AND status = %(__from)s AND attempt = %(__attempt)s AND rq_job_id <=> %(__token)s"
		" AND has_dependents = %(__has_dependents)s"
	)
	guard_values = {
		"__from": from_status,
		"__attempt": row.attempt,
		"__token": row.rq_job_id,
		"__has_dependents": row.has_dependents,
	}
	write = (to_status, values, {}, event, message, actor, duration, worker)
	if _write([row], *write, guard=guard, guard_values=guard_values):
		return row
	# The job moved on, or gained a dependent: its row, under the lock, tells which.
	locked = lock_job(row.name)
	if not locked or not _may_move(locked, to_status, expect, row.attempt, row.rq_job_id):
		return None
	_write([locked], *write)
	return locked


def transition_many(
	jobs: Collection[str],
	to_status: str,
	*,
	expect: Collection[str],
	event: str | None = None,
	message: str | None = None,
	actor: str | None = None,
	values: dict[str, Any] | None = None,
	job_values: dict[str, dict[str, Any]] | None = None,
) -> list[frappe._dict]:
	"""``transition`` for many jobs at once: one locking read, one UPDATE, multi-row log INSERTs.

	Rows another transaction holds are skipped (``SKIP LOCKED``), like rows no longer in
	``expect``: their move is left for a later pass. ``values`` apply to every job; ``job_values``
	(``{job: {column: value}}``, the same columns for every job) to one job each. Returns the
	previous rows of the jobs that moved.
	"""
	job_values = job_values or {}
	columns = {column for per_job in job_values.values() for column in per_job}
	check_values({**(values or {}), **dict.fromkeys(columns)})
	if not jobs:
		return []
	rows = frappe.db.sql(
		f"""SELECT {LOCK_COLUMNS} FROM `tabBackground Job` FORCE INDEX (PRIMARY) WHERE name IN %(jobs)s
		ORDER BY name FOR UPDATE SKIP LOCKED""",
		{"jobs": tuple(jobs)},
		as_dict=True,
	)
	moving = [row for row in rows if _may_move(row, to_status, expect)]
	if moving:
		_write(moving, to_status, values or {}, job_values, event, message, actor, None, None)
	return moving


def _write(
	rows: list[frappe._dict],
	to_status: str,
	values: dict[str, Any],
	job_values: dict[str, dict[str, Any]],
	event: str | None,
	message: str | None,
	actor: str | None,
	duration: float | None,
	worker: str | None,
	guard: str = "",
	guard_values: dict[str, Any] | None = None,
) -> bool:
	"""The UPDATE, the log rows, the realtime events and the counters of moves already checked.
	``guard``: more conditions on the UPDATE (``known_row``); when it changes no row, nothing else
	is written and False is returned."""
	now = now_datetime()
	updates = {"status": to_status, "modified": now, **_stored_values(values)}
	if to_status in states.TERMINAL:
		updates.setdefault("finished_at", now)
	assignments = [f"`{column}` = %({column})s" for column in updates]
	names = [row.name for row in rows]
	per_job_columns = sorted({column for per_job in job_values.values() for column in per_job})
	for number, column in enumerate(per_job_columns):
		cases = []
		for index, name in enumerate(names):
			cases.append(f"WHEN %(__job_{index})s THEN %(__value_{number}_{index})s")
			updates[f"__value_{number}_{index}"] = _stored_values(job_values.get(name, {})).get(column)
		assignments.append(f"`{column}` = CASE name {' '.join(cases)} ELSE `{column}` END")
	if per_job_columns:
		updates.update({f"__job_{index}": name for index, name in enumerate(names)})
	if updates.get("queued_at"):
		updates["__queued_epoch"] = priority.epoch_seconds(clock.site_to_utc(updates["queued_at"]))
		assignments.append(f"`claim_order` = {priority.claim_order_sql('%(__queued_epoch)s')}")
	frappe.db.sql(
		f"""UPDATE `tabBackground Job` FORCE INDEX (PRIMARY) SET {", ".join(assignments)}
		WHERE name IN %(__jobs)s {guard}""",
		{**updates, **(guard_values or {}), "__jobs": tuple(names)},
	)
	if guard and not frappe.db._cursor.rowcount:
		return False
	_record_moves(rows, to_status, updates, job_values, event, message, actor, duration, worker)
	return True


def record_inserted_move(row: frappe._dict, from_status: str) -> None:
	"""For a job inserted straight into ``row.status`` (``submit`` inserts a job that may run at
	once as Queued): the log row, realtime event, counters and log line of the move
	``from_status -> row.status``, exactly as ``transition`` writes them."""
	_record_moves([frappe._dict(row, status=from_status)], row.status, {}, {}, None, None, None, None, None)


def _record_moves(
	rows: list[frappe._dict],
	to_status: str,
	updates: dict[str, Any],
	job_values: dict[str, dict[str, Any]],
	event: str | None,
	message: str | None,
	actor: str | None,
	duration: float | None,
	worker: str | None,
) -> None:
	entries = []
	for row in rows:
		moved_event = event or states.event_for(row.status, to_status)
		own_values = job_values.get(row.name, {})
		new_attempt = own_values.get("attempt", updates.get("attempt", row.attempt))
		entries.append(
			{
				"job": row.name,
				"event": moved_event,
				"organization": row.organization,
				"job_type": row.job_type,
				"from_status": row.status,
				"to_status": to_status,
				"attempt": new_attempt,
				"actor": actor,
				"message": message,
				"duration": duration,
				"worker": worker or own_values.get("worker") or updates.get("worker") or row.worker,
			}
		)
		realtime.publish_status(row.name, row.owner, row.status, to_status, moved_event)
		if to_status in states.TERMINAL:
			ran = updates.get("run_time") if row.status == states.RUNNING else None
			frappe.db.after_commit.add(lambda row=row, ran=ran: _count_finished(row.job_type, to_status, ran))
		jobs_logger().info(
			{
				"event": moved_event,
				"job": row.name,
				"job_type": row.job_type,
				"from": row.status,
				"to": to_status,
				"attempt": new_attempt,
				"duration": duration,
				"correlation_id": row.correlation_id,
			}
		)
	execution_log.record_many(entries)
	left_running = [row for row in rows if row.status == states.RUNNING]
	if left_running:
		organization_caps.wake_after_running(left_running)
	if to_status == states.QUEUED:
		turns.note_queued(rows)
	elif to_status != states.RUNNING:
		turns.note_left([row for row in rows if row.status == states.QUEUED])
