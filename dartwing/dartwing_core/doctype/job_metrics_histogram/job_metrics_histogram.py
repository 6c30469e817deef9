# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe

from dartwing.dartwing_core.background_jobs.generic_endpoints import TenantDocument


class JobMetricsHistogram(TenantDocument):
	"""Rows are written only by ``metrics_rollup`` (SQL); System Managers may read them."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		bucket: DF.Int
		job_type: DF.Data | None
		jobs: DF.Int
		measure: DF.Data | None
		organization: DF.Data | None
		period: DF.Literal["Hour", "Day"]
		period_start: DF.Datetime | None
	# end: auto-generated types


def on_doctype_update():
	# The key, then the count: a window's histogram is read from this index alone.
	frappe.db.add_unique(
		"Job Metrics Histogram",
		["period", "period_start", "organization", "job_type", "measure", "bucket"],
		"metrics_histogram_key",
	)
	frappe.db.add_index(
		"Job Metrics Histogram",
		["period", "period_start", "organization", "job_type", "measure", "bucket", "jobs"],
		"metrics_histogram_read_index",
	)
