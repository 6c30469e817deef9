// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

frappe.provide("frappe.dashboards.chart_sources");

// Jobs created in each of the last 24 hours, stacked by status (SQL aggregate, permission-scoped).
frappe.dashboards.chart_sources["Background Jobs per Hour"] = {
	method: "dartwing.dartwing_core.api.desk.jobs_per_hour",
	filters: [],
};
