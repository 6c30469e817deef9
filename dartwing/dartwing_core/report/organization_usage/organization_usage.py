# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

"""Organization Usage: who uses the queues now. Per organization, its jobs Queued and Running and
how long its oldest Queued job has waited (``metrics.organization_usage``: the organizations with
the most Queued jobs, then ``other``). Managers only: it shows every organization."""

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs import metrics
from dartwing.dartwing_core.background_jobs.permissions import is_manager


def execute(filters=None):
	if not is_manager():
		frappe.throw(_("Only job managers see every organization's usage"), frappe.PermissionError)
	return get_columns(), metrics.organization_usage()


def get_columns() -> list[dict]:
	return [
		{"fieldname": "organization", "label": _("Organization"), "fieldtype": "Data", "width": 220},
		{"fieldname": "queued", "label": _("Queued"), "fieldtype": "Int", "width": 100},
		{"fieldname": "running", "label": _("Running"), "fieldtype": "Int", "width": 100},
		{
			"fieldname": "oldest_wait_seconds",
			"label": _("Oldest Wait (s)"),
			"fieldtype": "Float",
			"precision": 1,
			"width": 140,
		},
	]
