"""The engine compares its times in UTC columns now: fill them for jobs and schedules still waiting.

Each site-zone value is read in the site's zone as it is at migrate time. Idempotent: only rows
whose UTC column is still empty are filled.
"""

import frappe

from dartwing.dartwing_core.background_jobs import clock

# (doctype, site-zone column, UTC column, condition on the rows that still wait on it)
COLUMNS = (
	("Background Job", "next_retry_at", "next_retry_utc", "status = 'Retrying'"),
	("Background Job", "run_at", "run_at_utc", "status = 'Pending'"),
	("Background Job", "heartbeat", "heartbeat_utc", "status = 'Running'"),
	("Job Schedule", "next_run_at", "next_run_utc", "enabled = 1"),
)


def execute():
	for doctype, column, utc_column, condition in COLUMNS:
		rows = frappe.db.sql(
			f"""SELECT name, `{column}` FROM `tab{doctype}`
			WHERE {condition} AND `{column}` IS NOT NULL AND `{utc_column}` IS NULL""",
		)
		for name, value in rows:
			frappe.db.sql(
				f"UPDATE `tab{doctype}` SET `{utc_column}` = %s WHERE name = %s",
				(clock.site_to_utc(value), name),
			)
	frappe.db.commit()
