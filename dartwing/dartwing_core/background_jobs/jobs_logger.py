"""Structured logs of the engine: ``frappe.logger("dartwing.jobs")`` at INFO.

Contract: ``jobs_logger()`` returns the site's ``dartwing.jobs`` logger (``logs/dartwing.jobs.log``)
with its level set to INFO, or to the site config's ``dartwing_log_level``; Frappe's default
(ERROR outside the dev server) would drop the warnings and transitions operators rely on.
Each record is a dict: event, job, job_type, attempt, duration, correlation_id and friends.
Its files rotate at ``LOG_FILE_BYTES`` and ``LOG_FILE_COUNT`` are kept: about 100,000 jobs at two
records a job (Frappe's default, 100 KB, rotated every ~200 jobs of a drain).
"""

import frappe

# Per process: (site, level) -> logger. Setting a logger's level clears the logging module's
# caches, so it is done once, not on every record.
_loggers: dict[tuple, object] = {}
LOG_FILE_BYTES = 5 * 1024 * 1024
LOG_FILE_COUNT = 10


def jobs_logger():
	key = (getattr(frappe.local, "site", None), frappe.conf.get("dartwing_log_level") or "INFO")
	logger = _loggers.get(key)
	if logger is None:
		logger = frappe.logger(
			"dartwing.jobs", allow_site=True, max_size=LOG_FILE_BYTES, file_count=LOG_FILE_COUNT
		)
		logger.setLevel(key[1])
		_loggers[key] = logger
	return logger
