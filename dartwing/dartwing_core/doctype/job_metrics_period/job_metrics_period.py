# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe

from dartwing.dartwing_core.background_jobs.generic_endpoints import TenantDocument


class JobMetricsPeriod(TenantDocument):
	"""Rows are written only by ``metrics_rollup`` (SQL); System Managers may read them."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		computed_at: DF.Datetime | None
		dirty: DF.Check
		period: DF.Literal["Hour", "Day", "Refresh"]
		period_start: DF.Datetime | None
	# end: auto-generated types


def on_doctype_update():
	frappe.db.add_index(
		"Job Metrics Period", ["period", "dirty", "period_start"], "metrics_period_dirty_index"
	)
	frappe.db.add_index(
		"Job Metrics Period", ["period", "period_start", "computed_at"], "metrics_period_read_index"
	)
