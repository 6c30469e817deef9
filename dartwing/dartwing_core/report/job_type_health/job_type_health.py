# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

"""Job Type Health: per job type, for jobs created in the chosen dates, how many ran, how many
failed, the failure rate, run time percentiles and the latest failure.

All figures are SQL aggregates over the creation window as ``metrics_window.window`` reads it (stored
hours and days of the metrics rollups, the jobs themselves for the rest); the percentiles are
the engine's one percentile, ``metrics_window.type_percentiles``. The latest failure's time comes with
the counts; the failed job itself is then found by that time (an index lookup). Rows are limited
to the jobs the user may read, like the Background Job list.
"""

import frappe
from frappe import _
from frappe.utils import add_days, flt, get_datetime, getdate, today

from dartwing.dartwing_core.background_jobs import metrics_window, states


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
	win = metrics_window.window(
		get_datetime(from_date),
		get_datetime(add_days(to_date, 1)),
		organization=filters.get("organization") or None,
		job_type=filters.get("job_type") or None,
	)
	by_type: dict[str, frappe._dict] = {}
	for group in metrics_window.window_counts(win, keys=("job_type", "status"), attempts=True):
		row = by_type.setdefault(
			group.job_type,
			frappe._dict(
				job_type=group.job_type, jobs=0, runs=0, completed=0, failed=0, canceled=0, active=0,
				ran=0, run_total=0.0, last_failure_at=None, last_failed_job=None, last_error=None,
			),
		)  # fmt: skip
		jobs = int(group.jobs or 0)
		row.jobs += jobs
		row.runs += int(group.attempts or 0)
		row.completed += jobs if group.status == states.COMPLETED else 0
		row.canceled += jobs if group.status == states.CANCELED else 0
		row.active += jobs if group.status in states.ACTIVE else 0
		row.ran += int(group.ran or 0)
		row.run_total += float(group.run_total or 0)
		if group.status in states.FAILED_STATUSES:
			row.failed += jobs
			if group.last_finished_at and (
				not row.last_failure_at or get_datetime(group.last_finished_at) > row.last_failure_at
			):
				row.last_failure_at = get_datetime(group.last_finished_at)
	_add_last_failures(by_type, win)
	percentiles = metrics_window.type_percentiles(measures=("run_time",), window=win)
	rows = []
	for row in by_type.values():
		ended = row.completed + row.failed
		row.failure_rate = round(100 * row.failed / ended, 2) if ended else None
		row.run_avg = row.run_total / row.ran if row.ran else None
		timing = percentiles.get(row.job_type, {})
		row.run_p50, row.run_p95 = timing.get("run_p50"), timing.get("run_p95")
		del row["ran"], row["run_total"]
		rows.append(row)
	# As SQL's ORDER BY failure_rate DESC (no rate last), jobs DESC, job_type.
	return sorted(
		rows, key=lambda row: (row.failure_rate is None, -(row.failure_rate or 0), -row.jobs, row.job_type)
	)


def _add_last_failures(by_type: dict[str, frappe._dict], win) -> None:
	"""The latest failed job of each type in the window, found by its finish time (ties: the
	greatest name): one lookup on the (status, finished_at) index for all types."""
	times = {row.last_failure_at for row in by_type.values() if row.last_failure_at}
	if not times:
		return
	failures = frappe.db.sql(
		f"""SELECT job_type, name, finished_at, error_type, error_message FROM `tabBackground Job`
		WHERE status IN %(__failed)s AND finished_at IN %(__failure_times)s AND {win.jobs}
		ORDER BY finished_at DESC, name DESC""",
		{**win.values, "__failed": states.FAILED_STATUSES, "__failure_times": tuple(times)},
		as_dict=True,
	)
	for failure in failures:
		row = by_type.get(failure.job_type)
		if row and not row.last_failed_job and get_datetime(failure.finished_at) == row.last_failure_at:
			row.last_failed_job = failure.name
			row.last_error = ": ".join(
				part for part in (failure.error_type, (failure.error_message or "")[:240]) if part
			)


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
