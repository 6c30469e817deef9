# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe

from dartwing.dartwing_core.background_jobs.generic_endpoints import TenantDocument


class JobMetricsCount(TenantDocument):
	"""Rows are written only by ``metrics_rollup`` (SQL); System Managers may read them."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		attempts: DF.Int
		finished: DF.Int
		job_type: DF.Data | None
		jobs: DF.Int
		last_finished_at: DF.Datetime | None
		organization: DF.Data | None
		period: DF.Literal["Hour", "Day"]
		period_start: DF.Datetime | None
		priority: DF.Data | None
		queue: DF.Data | None
		ran: DF.Int
		run_total: DF.Float
		status: DF.Data | None
		wait_total: DF.Float
	# end: auto-generated types


def on_doctype_update():
	frappe.db.add_unique(
		"Job Metrics Count",
		["period", "period_start", "organization", "job_type", "queue", "priority", "status"],
		"metrics_count_key",
	)
