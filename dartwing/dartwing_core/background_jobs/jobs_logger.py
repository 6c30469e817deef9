"""Structured logs of the engine: ``frappe.logger("dartwing.jobs")`` at INFO.

Contract: ``jobs_logger()`` returns the site's ``dartwing.jobs`` logger (``logs/dartwing.jobs.log``)
with its level set to INFO, or to the site config's ``dartwing_log_level``; Frappe's default
(ERROR outside the dev server) would drop the warnings and transitions operators rely on.
Each record is a dict: event, job, job_type, attempt, duration, correlation_id and friends.
"""

import frappe


def jobs_logger():
	logger = frappe.logger("dartwing.jobs", allow_site=True)
	logger.setLevel(frappe.conf.get("dartwing_log_level") or "INFO")
	return logger
