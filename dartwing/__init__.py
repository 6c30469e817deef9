"""Dartwing: durable background jobs for Frappe.

``dartwing.enqueue``, ``dartwing.job``, ``dartwing.progress`` and ``dartwing.raise_if_canceled``
are the adoption API (``dartwing_core/background_jobs/enqueue.py`` and ``running_job.py``); they
are imported on first use so that ``import dartwing`` stays free of Frappe.
"""

__version__ = "0.1.0"


def enqueue(method, **kwargs):
	"""``frappe.enqueue``'s call, made a durable Background Job (see ``background_jobs.enqueue``)."""
	from dartwing.dartwing_core.background_jobs.enqueue import enqueue as durable_enqueue

	return durable_enqueue(method, **kwargs)


def job(**declared):
	"""``@dartwing.job(retries=5, timeout=600)`` gives the function ``.enqueue(**kwargs)``."""
	from dartwing.dartwing_core.background_jobs.enqueue import job as job_decorator

	return job_decorator(**declared)


def progress(percent: float, message: str | None = None) -> None:
	"""Report the running job's progress (a no-op outside a job); raises JobCanceled on cancel."""
	from dartwing.dartwing_core.background_jobs.running_job import progress as report

	report(percent, message)


def raise_if_canceled() -> None:
	"""Raise JobCanceled if the running job was canceled (a no-op outside a job)."""
	from dartwing.dartwing_core.background_jobs.running_job import raise_if_canceled as check

	check()
