// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

frappe.provide("frappe.dashboards.chart_sources");

// Average and p95 run time per job type over the last 7 days (SQL aggregate, permission-scoped).
frappe.dashboards.chart_sources["Background Job Run Time"] = {
	method: "dartwing.dartwing_core.api.desk.run_time_by_job_type",
	filters: [],
};
