"""Deduplication of submissions, atomic through the unique index on ``dedup_key``.

Contract:
- ``find_dedup_match(dedup_key, window_seconds, locking)``: the job holding ``dedup_key`` while it
  is active, or finished less than ``window_seconds`` ago; a job that ended before the window
  gives the key up (it is cleared), and None is returned.
- ``claim_dedup_key(job, dedup_key)``: gives a locked job the key through the unique index, or
  returns the active job that holds it (a manual retry uses it).
- ``deduplicated(match, ...)``: the answer a deduplicated submission gets (with its
  Deduplicated log row), or ``DuplicateJobError`` (HTTP 409) in strict mode.
"""

from datetime import timedelta

import frappe
from frappe import _
from frappe.utils import now_datetime

from dartwing.dartwing_core.background_jobs import execution_log, states
from dartwing.dartwing_core.background_jobs.api_errors import DuplicateJobError


def find_dedup_match(dedup_key: str, window_seconds: int, locking: bool) -> frappe._dict | None:
	rows = frappe.db.sql(
		f"""SELECT name, status, finished_at FROM `tabBackground Job` WHERE dedup_key = %s
		{"LOCK IN SHARE MODE" if locking else ""}""",
		dedup_key,
		as_dict=True,
	)
	if not rows:
		return None
	match = rows[0]
	if match.status in states.ACTIVE:
		return match
	if match.finished_at and match.finished_at > now_datetime() - timedelta(seconds=window_seconds):
		return match
	# Outside the window: the old job gives up the key.
	frappe.db.sql(
		"UPDATE `tabBackground Job` SET dedup_key = NULL WHERE name = %s AND dedup_key = %s",
		(match.name, dedup_key),
	)
	return None


def claim_dedup_key(job: str, dedup_key: str) -> frappe._dict | None:
	"""Give ``job`` (a row this transaction has locked) ``dedup_key`` through the unique index, as
	a submission does. Returns the *active* job that holds the key instead; a job that has ended
	gives it up. Concurrent claims are serialised by the index: the second waits for the first's
	commit and then sees it."""
	for _attempt in range(3):
		frappe.db.savepoint("dartwing_dedup_key")
		try:
			frappe.db.sql("UPDATE `tabBackground Job` SET dedup_key = %s WHERE name = %s", (dedup_key, job))
			return None
		except Exception as exc:
			if not frappe.db.is_unique_key_violation(exc):
				raise
			frappe.db.rollback(save_point="dartwing_dedup_key")
		if match := find_dedup_match(dedup_key, 0, locking=True):
			return match
	raise DuplicateJobError(_("The dedup key of {0} is contended; try again").format(job))


def deduplicated(match: frappe._dict, job_type: str, organization: str, user: str, strict: bool) -> dict:
	if strict:
		raise DuplicateJobError(_("An identical {0} job already exists: {1}").format(job_type, match.name))
	execution_log.record(
		match.name,
		states.EVENT_DEDUPLICATED,
		organization=organization,
		job_type=job_type,
		from_status=match.status,
		to_status=match.status,
		actor=user,
		message=_("An identical submission returned this job"),
	)
	return {"job_id": match.name, "status": match.status, "deduplicated": True}
