# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

"""Job Type Health: per job type, for jobs created in the chosen dates, how many ran, how many
failed, the failure rate, run time percentiles and the latest failure.

All figures are SQL aggregates (a window function for the latest failure); the percentiles are
the engine's one percentile, ``metrics.type_percentiles``. Rows are limited to the jobs the user
may read, like the Background Job list.
"""

import frappe
from frappe import _
from frappe.utils import add_days, flt, getdate, today

from dartwing.dartwing_core.background_jobs import metrics, states
from dartwing.dartwing_core.background_jobs.permissions import background_job_query


def execute(filters=None):
	filters = frappe._dict(filters or {})
	rows = get_rows(filters)
	return get_columns(), rows, None, get_chart(rows), get_summary(rows)


def get_columns() -> list[dict]:
	return [
		{
			"fieldname": "job_type",
			"label": _("Job Type"),
			"fieldtype": "Link",
			"options": "Job Type",
			"width": 170,
		},
		{"fieldname": "jobs", "label": _("Jobs"), "fieldtype": "Int", "width": 80},
		{"fieldname": "runs", "label": _("Runs"), "fieldtype": "Int", "width": 80},
		{"fieldname": "completed", "label": _("Completed"), "fieldtype": "Int", "width": 100},
		{"fieldname": "failed", "label": _("Failed"), "fieldtype": "Int", "width": 80},
		{"fieldname": "canceled", "label": _("Canceled"), "fieldtype": "Int", "width": 90},
		{"fieldname": "active", "label": _("Active"), "fieldtype": "Int", "width": 80},
		{"fieldname": "failure_rate", "label": _("Failure Rate"), "fieldtype": "Percent", "width": 110},
		{
			"fieldname": "run_avg",
			"label": _("Avg Run (s)"),
			"fieldtype": "Float",
			"precision": 3,
			"width": 110,
		},
		{
			"fieldname": "run_p50",
			"label": _("p50 Run (s)"),
			"fieldtype": "Float",
			"precision": 3,
			"width": 110,
		},
		{
			"fieldname": "run_p95",
			"label": _("p95 Run (s)"),
			"fieldtype": "Float",
			"precision": 3,
			"width": 110,
		},
		{"fieldname": "last_failure_at", "label": _("Last Failure"), "fieldtype": "Datetime", "width": 160},
		{
			"fieldname": "last_failed_job",
			"label": _("Last Failed Job"),
			"fieldtype": "Link",
			"options": "Background Job",
			"width": 150,
		},
		{"fieldname": "last_error", "label": _("Last Error"), "fieldtype": "Data", "width": 320},
	]


def get_rows(filters: frappe._dict) -> list[dict]:
	from_date = getdate(filters.from_date or add_days(today(), -7))
	to_date = getdate(filters.to_date or today())
	if from_date > to_date:
		frappe.throw(_("From Date must be before To Date"))
	conditions = ["creation >= %(from_date)s", "creation < %(to_date)s"]
	values = {
		"from_date": from_date,
		"to_date": add_days(to_date, 1),
		"failed": states.FAILED_STATUSES,
		"active": tuple(states.ACTIVE),
	}
	for field in ("organization", "job_type"):
		if filters.get(field):
			conditions.append(f"{field} = %({field})s")
			values[field] = filters.get(field)
	scope = background_job_query()
	if scope:
		conditions.append(f"({scope})")

	where = " AND ".join(conditions)
	rows = frappe.db.sql(
		f"""WITH jobs AS (
			SELECT name, job_type, status, attempt, run_time, started_at, finished_at,
				error_type, error_message
			FROM `tabBackground Job` WHERE {where}
		),
		failures AS (
			SELECT job_type, name, finished_at, error_type, error_message,
				ROW_NUMBER() OVER (PARTITION BY job_type ORDER BY finished_at DESC, name DESC) AS position
			FROM jobs WHERE status IN %(failed)s
		)
		SELECT jobs.job_type,
			COUNT(*) AS jobs,
			SUM(jobs.attempt) AS runs,
			SUM(jobs.status = 'Completed') AS completed,
			SUM(jobs.status IN %(failed)s) AS failed,
			SUM(jobs.status = 'Canceled') AS canceled,
			SUM(jobs.status IN %(active)s) AS active,
			ROUND(100 * SUM(jobs.status IN %(failed)s)
				/ NULLIF(SUM(jobs.status = 'Completed') + SUM(jobs.status IN %(failed)s), 0), 2) AS failure_rate,
			AVG(CASE WHEN jobs.started_at IS NOT NULL AND jobs.finished_at IS NOT NULL
				THEN jobs.run_time END) AS run_avg,
			MAX(failures.finished_at) AS last_failure_at,
			MAX(failures.name) AS last_failed_job,
			MAX(CONCAT_WS(': ', failures.error_type, LEFT(failures.error_message, 240))) AS last_error
		FROM jobs
		LEFT JOIN failures ON failures.job_type = jobs.job_type AND failures.position = 1
		GROUP BY jobs.job_type
		ORDER BY failure_rate DESC, jobs DESC, jobs.job_type""",
		values,
		as_dict=True,
	)
	percentiles = metrics.type_percentiles(where, values, measures=("run_time",))
	for row in rows:
		timing = percentiles.get(row.job_type, {})
		row.run_p50, row.run_p95 = timing.get("run_p50"), timing.get("run_p95")
	return rows


def get_chart(rows: list[dict]) -> dict | None:
	if not rows:
		return None
	return {
		"data": {
			"labels": [row.job_type for row in rows],
			"datasets": [
				{"name": _("p50 Run (s)"), "values": [flt(row.run_p50, 3) for row in rows]},
				{"name": _("p95 Run (s)"), "values": [flt(row.run_p95, 3) for row in rows]},
			],
		},
		"type": "bar",
		"colors": ["#5e64ff", "#ff5858"],
	}


def get_summary(rows: list[dict]) -> list[dict]:
	completed = sum(int(row.completed or 0) for row in rows)
	failed = sum(int(row.failed or 0) for row in rows)
	ended = completed + failed
	return [
		{
			"label": _("Jobs"),
			"value": sum(int(row.jobs) for row in rows),
			"datatype": "Int",
			"indicator": "Blue",
		},
		{"label": _("Completed"), "value": completed, "datatype": "Int", "indicator": "Green"},
		{"label": _("Failed"), "value": failed, "datatype": "Int", "indicator": "Red" if failed else "Green"},
		{
			"label": _("Failure Rate"),
			"value": round(100 * failed / ended, 2) if ended else 0,
			"datatype": "Percent",
			"indicator": "Red" if failed else "Green",
		},
	]
