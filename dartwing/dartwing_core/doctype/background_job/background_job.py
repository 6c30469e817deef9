# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe

from dartwing.dartwing_core.background_jobs import metrics_rollup, states
from dartwing.dartwing_core.background_jobs.claim_indexes import ORGANIZATION_CLAIM_INDEX, QUEUE_CLAIM_INDEX
from dartwing.dartwing_core.background_jobs.generic_endpoints import TenantDocument
from dartwing.dartwing_core.background_jobs.permissions import can_cancel_job, is_manager


class BackgroundJob(TenantDocument):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from dartwing.dartwing_core.doctype.background_job_dependency.background_job_dependency import (
			BackgroundJobDependency,
		)

		attempt: DF.Int
		cancel_requested: DF.Check
		canceled_at: DF.Datetime | None
		canceled_by: DF.Link | None
		checkpoint: DF.Code | None
		claim_order: DF.Float
		concurrency_key: DF.Data | None
		correlation_id: DF.Data | None
		dedup_key: DF.Data | None
		depends_on: DF.Table[BackgroundJobDependency]
		error_message: DF.SmallText | None
		error_type: DF.Data | None
		finished_at: DF.Datetime | None
		has_dependents: DF.Check
		heartbeat: DF.Datetime | None
		heartbeat_utc: DF.Datetime | None
		job_schedule: DF.Link | None
		job_type: DF.Link
		max_retries: DF.Int
		next_retry_at: DF.Datetime | None
		next_retry_utc: DF.Datetime | None
		organization: DF.Link
		output_reference: DF.Data | None
		parameters: DF.Code | None
		parameters_hash: DF.Data | None
		priority: DF.Literal["Low", "Normal", "High", "Critical"]
		progress_message: DF.Data | None
		progress_percent: DF.Percent
		queue: DF.Data | None
		recoveries: DF.Int
		recoveries_in_a_row: DF.Int
		queued_at: DF.Datetime | None
		reference_doctype: DF.Link | None
		reference_name: DF.DynamicLink | None
		result: DF.Code | None
		rq_job_id: DF.Data | None
		run_at: DF.Datetime | None
		run_at_utc: DF.Datetime | None
		run_time: DF.Float
		scheduled_for: DF.Datetime | None
		started_at: DF.Datetime | None
		status: DF.Literal[
			"Pending",
			"Queued",
			"Running",
			"Retrying",
			"Completed",
			"Failed",
			"Timed Out",
			"Dead Letter",
			"Canceled",
		]
		timeout_seconds: DF.Int
		traceback: DF.Code | None
		wait_time: DF.Float
		worker: DF.Data | None
		worker_stopping: DF.Check

	# end: auto-generated types
	def onload(self):
		"""Tell the form which actions the API will accept from this user (the form only shows them)."""
		self.set_onload(
			"can_cancel",
			self.status not in states.TERMINAL
			and not self.cancel_requested
			and can_cancel_job(self.owner, self.organization),
		)
		self.set_onload("can_retry", self.status in states.RETRYABLE_BY_MANAGER and is_manager())

	def on_trash(self):
		frappe.db.delete("Job Execution Log", {"job": self.name})
		metrics_rollup.mark_jobs_dirty("name = %(name)s", {"name": self.name})


def on_doctype_update():
	for columns in (
		["status", "next_retry_utc"],
		["status", "run_at_utc"],
		["organization", "status", "creation"],
		["concurrency_key", "status"],
		["job_type", "status", "creation"],
		["status", "finished_at"],
		["status", "name"],  # the reaper's passes over Queued jobs, in name order from a cursor
		["reference_doctype", "reference_name"],
		# The metrics rollups find the hours of recently changed jobs from this index alone.
		["modified", "creation"],
	):
		frappe.db.add_index("Background Job", columns)
	# The claim's best jobs of a queue (``claiming`` names it).
	frappe.db.add_index("Background Job", ["status", "queue", "claim_order", "queued_at"], QUEUE_CLAIM_INDEX)
	# The claim's best jobs of the organization whose turn it is in a line, and whether it has any
	# (``turns``, ``claiming``: they name it).
	frappe.db.add_index(
		"Background Job",
		["status", "queue", "organization", "priority", "claim_order", "queued_at"],
		ORGANIZATION_CLAIM_INDEX,
	)
	# Metrics read a creation window (everyone's, or a member's organizations') from the index alone.
	window = [
		"creation",
		"job_type",
		"status",
		"queue",
		"priority",
		"started_at",
		"finished_at",
		"run_time",
		"wait_time",
	]
	frappe.db.add_index("Background Job", window, "metrics_window_index")
	frappe.db.add_index("Background Job", ["organization", *window], "metrics_organization_window_index")
	drop_plain_modified_index()


# Frappe gives every table an index on ``modified`` alone; here ``(modified, creation)`` serves every
# read of it (list views sort by ``modified``), and each of a job's status moves would update both.
PLAIN_MODIFIED_INDEX = "modified"


def drop_plain_modified_index() -> None:
	if frappe.db.has_index("tabBackground Job", PLAIN_MODIFIED_INDEX):
		frappe.db.sql_ddl(f"ALTER TABLE `tabBackground Job` DROP INDEX `{PLAIN_MODIFIED_INDEX}`")
