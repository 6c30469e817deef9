"""Jobs that other jobs were submitted to wait for get ``has_dependents`` (new), so that their end
still releases or fails those jobs: a finishing job looks its dependents up only when it is set."""

import frappe


def execute():
	frappe.db.sql(
		"""UPDATE `tabBackground Job` job
		JOIN (SELECT DISTINCT depends_on FROM `tabBackground Job Dependency`
			WHERE parenttype = 'Background Job') dependency ON dependency.depends_on = job.name
		SET job.has_dependents = 1"""
	)
