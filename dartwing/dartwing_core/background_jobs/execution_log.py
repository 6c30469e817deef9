"""The append-only audit trail: one Job Execution Log row per event of a job.

Contract: ``record(...)`` (one event) and ``record_many(entries)`` (many, in multi-row INSERTs)
are the only way a log row is written. They insert in the caller's
transaction (so a transition and its log row commit or roll back together) and never updates
or deletes. Within ``held_until_commit()`` the rows wait for the transaction's commit and go in
one INSERT just before it (a rollback drops them). ``history(job)`` returns a job's events oldest first.
"""

from contextlib import contextmanager

import frappe
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import stored_text

# Frappe names autoincrement doctypes from a sequence (MariaDB) named after the doctype.


_COLUMNS = (
	"name, creation, modified, owner, modified_by, docstatus, idx, job, organization, job_type, event, "
	"from_status, to_status, attempt, actor, message, duration, worker, timestamp"
)
_ROW = "(NEXTVAL(`job_execution_log_id_seq`), %s, %s, %s, %s, 0, 0, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
# Rows per INSERT statement when many events are written at once.
INSERT_BATCH = 500


def record(
	job: str,
	event: str,
	*,
	organization: str | None = None,
	job_type: str | None = None,
	from_status: str | None = None,
	to_status: str | None = None,
	attempt: int | None = None,
	actor: str | None = None,
	message: str | None = None,
	duration: float | None = None,
	worker: str | None = None,
) -> None:
	record_many(
		[
			{
				"job": job,
				"event": event,
				"organization": organization,
				"job_type": job_type,
				"from_status": from_status,
				"to_status": to_status,
				"attempt": attempt,
				"actor": actor,
				"message": message,
				"duration": duration,
				"worker": worker,
			}
		]
	)


def record_many(entries: list[dict]) -> None:
	"""One log row per entry (the keyword arguments of ``record``), in multi-row INSERTs."""
	now = now_datetime()
	session_user = frappe.session.user
	rows = []
	for entry in entries:
		user = entry.get("actor") or session_user
		rows.append(
			(
				now,
				now,
				user,
				user,
				entry["job"],
				entry.get("organization"),
				entry.get("job_type"),
				entry["event"],
				entry.get("from_status"),
				entry.get("to_status"),
				entry.get("attempt") or 0,
				user,
				stored_text.plain((entry.get("message") or "")[:2000] or None),
				entry.get("duration") or 0,
				stored_text.plain(entry.get("worker"), stored_text.DATA_LENGTH),
				now,
			)
		)
	held = getattr(frappe.local, "dartwing_held_log_rows", None)
	if held is None:
		_insert(rows)
		return
	if not held:
		frappe.db.before_commit.add(_insert_held)
		frappe.db.after_rollback.add(held.clear)
	held.extend(rows)


def _insert(rows: list[tuple]) -> None:
	for first in range(0, len(rows), INSERT_BATCH):
		batch = rows[first : first + INSERT_BATCH]
		frappe.db.sql(
			f"INSERT INTO `tabJob Execution Log` ({_COLUMNS}) VALUES {', '.join([_ROW] * len(batch))}",
			[value for row in batch for value in row],
		)


@contextmanager
def held_until_commit():
	"""Within (a draining work horse, where nothing reads the log before its commits): the log rows
	of a transaction are inserted together just before it commits, in one statement."""
	frappe.local.dartwing_held_log_rows = []
	try:
		yield
	finally:
		frappe.local.dartwing_held_log_rows = None


def _insert_held() -> None:
	held = getattr(frappe.local, "dartwing_held_log_rows", None)
	if held:
		rows = list(held)
		held.clear()
		_insert(rows)


def history(job: str) -> list[dict]:
	return frappe.db.sql(
		"""SELECT name AS id, event, from_status, to_status, attempt, actor, message, duration, worker, timestamp
		FROM `tabJob Execution Log` WHERE job = %s ORDER BY timestamp ASC, name ASC""",
		job,
		as_dict=True,
	)
