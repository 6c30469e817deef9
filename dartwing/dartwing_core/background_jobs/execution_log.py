"""The append-only audit trail: one Job Execution Log row per event of a job.

Contract: ``record(...)`` is the only way a log row is written. It inserts in the caller's
transaction (so a transition and its log row commit or roll back together) and never updates
or deletes. ``history(job)`` returns a job's events oldest first.
"""

import frappe
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import stored_text

# Frappe names autoincrement doctypes from a sequence (MariaDB) named after the doctype.


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
	now = now_datetime()
	user = actor or frappe.session.user
	frappe.db.sql(
		"""INSERT INTO `tabJob Execution Log`
			(name, creation, modified, owner, modified_by, docstatus, idx,
			job, organization, job_type, event, from_status, to_status, attempt,
			actor, message, duration, worker, timestamp)
		VALUES (NEXTVAL(`job_execution_log_id_seq`), %(now)s, %(now)s, %(user)s, %(user)s, 0, 0,
			%(job)s, %(organization)s, %(job_type)s, %(event)s, %(from_status)s, %(to_status)s, %(attempt)s,
			%(user)s, %(message)s, %(duration)s, %(worker)s, %(now)s)""",
		{
			"now": now,
			"user": user,
			"job": job,
			"organization": organization,
			"job_type": job_type,
			"event": event,
			"from_status": from_status,
			"to_status": to_status,
			"attempt": attempt or 0,
			"message": stored_text.plain((message or "")[:2000] or None),
			"duration": duration or 0,
			"worker": stored_text.plain(worker, stored_text.DATA_LENGTH),
		},
	)


def history(job: str) -> list[dict]:
	return frappe.db.sql(
		"""SELECT name AS id, event, from_status, to_status, attempt, actor, message, duration, worker, timestamp
		FROM `tabJob Execution Log` WHERE job = %s ORDER BY timestamp ASC, name ASC""",
		job,
		as_dict=True,
	)
