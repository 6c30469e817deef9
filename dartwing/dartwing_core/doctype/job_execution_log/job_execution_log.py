# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.query_builder import Interval
from frappe.query_builder.functions import Now

from dartwing.dartwing_core.background_jobs.generic_endpoints import TenantDocument


class JobExecutionLog(TenantDocument):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		actor: DF.Link | None
		attempt: DF.Int
		duration: DF.Float
		event: DF.Literal[
			"Submitted",
			"Deduplicated",
			"Queued",
			"Started",
			"Progress",
			"Retry Scheduled",
			"Completed",
			"Failed",
			"Timed Out",
			"Canceled",
			"Cancel Requested",
			"Dead Lettered",
			"Recovered",
			"Requeued",
			"Paused",
			"Resumed",
			"Waiting",
			"Interrupted",
		]
		from_status: DF.Data | None
		job: DF.Link
		job_type: DF.Link | None
		message: DF.SmallText | None
		name: DF.Int | None
		organization: DF.Link | None
		timestamp: DF.Datetime | None
		to_status: DF.Data | None
		worker: DF.Data | None
	# end: auto-generated types
	"""Append-only: rows are written by the engine (``execution_log.record``), never by hand."""

	def before_insert(self):
		frappe.throw(_("Job Execution Log rows are written by the job engine only"), frappe.PermissionError)

	def validate(self):
		frappe.throw(_("Job Execution Log rows cannot be edited"), frappe.PermissionError)

	@staticmethod
	def clear_old_logs(days: int = 30) -> None:
		"""Log Settings: drop log rows older than ``days`` whose job has ended."""
		log = frappe.qb.DocType("Job Execution Log")
		job = frappe.qb.DocType("Background Job")
		ended = frappe.qb.from_(job).select(job.name).where(job.status.isin(_terminal_statuses()))
		frappe.db.delete(log, filters=(log.timestamp < (Now() - Interval(days=days))) & log.job.isin(ended))


def _terminal_statuses() -> list[str]:
	from dartwing.dartwing_core.background_jobs.states import TERMINAL

	return sorted(TERMINAL)


def on_doctype_update():
	frappe.db.add_index("Job Execution Log", ["job", "timestamp"])
	frappe.db.add_index("Job Execution Log", ["timestamp"])
	frappe.db.add_index("Job Execution Log", ["organization", "timestamp"])
