"""Demo job types were installed enabled everywhere; outside development and test sites they
are now off until a job manager enables them (see ``install.demo_job_types_enabled_by_default``)."""

import frappe

from dartwing.install import DEMO_JOB_TYPES, demo_job_types_enabled_by_default


def execute():
	if demo_job_types_enabled_by_default():
		return
	names = [definition["job_type_name"] for definition in DEMO_JOB_TYPES]
	frappe.db.set_value("Job Type", {"name": ("in", names)}, "enabled", 0, update_modified=False)
