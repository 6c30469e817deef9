# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe

from dartwing.dartwing_core.background_jobs.generic_endpoints import TenantDocument


class BackgroundJobTurn(TenantDocument):
	"""Rows are written only by ``turns`` (SQL); System Managers may read them."""

	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		last_served_at: DF.Datetime | None
		organization: DF.Data | None
		priority: DF.Data | None
		queue: DF.Data | None
		waiting: DF.Check
	# end: auto-generated types


def on_doctype_update():
	frappe.db.add_unique("Background Job Turn", ["queue", "priority", "organization"], "turn_lane")
	# The claim's next organization in a line: the least recently served with Queued jobs.
	frappe.db.add_index("Background Job Turn", ["queue", "priority", "waiting", "last_served_at"])
