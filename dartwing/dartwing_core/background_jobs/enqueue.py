"""``dartwing.enqueue``: ``frappe.enqueue``'s call, made durable; ``@dartwing.job``, its decorator form.

Contract:
- ``enqueue(method, **kwargs)`` accepts ``frappe.enqueue``'s arguments and submits a Background
  Job of the function's Job Type (``method_jobs.ensure_job_type``: created on first use, named
  after the function). The remaining keyword arguments are the function's, stored as the job's
  parameters (JSON values only) and passed back to it when it runs. They are bound to the
  function's signature first (``method_jobs.check_call``): a call that could not run, or a path
  that is not a function, raises ``InvalidCallError`` (a ``TypeError``) and stores nothing, no
  Job Type either. Returns ``{"job_id", "status", "deduplicated"}``.
- ``queue``, ``timeout``, ``retries`` and ``backoff`` are what the code declares for the Job
  Type; ``priority``, ``run_at``, ``depends_on``, ``organization``, ``reference_doctype`` /
  ``reference_name`` are per job, as in ``submit``. ``at_front`` means priority High when no
  priority is given. ``job_id`` with ``deduplicate=True`` returns the active job of that id
  instead of making another (``deduplicated: true``); ``job_id`` is also the job's correlation
  id. The job row is written in the caller's transaction and reaches a worker after it commits,
  whatever ``enqueue_after_commit`` says. ``now=True`` (or ``is_async=False``) calls the function
  at once in this process, as ``frappe.enqueue`` does, with no record. ``on_success`` /
  ``on_failure`` callbacks are refused: the job's history and status say what happened.
- Server side only: nothing here is whitelisted. The organization may be omitted (the caller's
  only one, else the site's obvious one, ``tenancy.obvious_organization``).
- ``job(**declared)`` decorates a module-level function and gives it ``fn.enqueue(**kwargs)``;
  the function itself is unchanged.
"""

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs import hashing, method_jobs, submit


def enqueue(
	method,
	queue: str | None = None,
	timeout: int | None = None,
	event=None,
	is_async: bool = True,
	job_name: str | None = None,
	now: bool = False,
	enqueue_after_commit: bool = True,
	*,
	on_success=None,
	on_failure=None,
	at_front: bool = False,
	job_id: str | None = None,
	deduplicate: bool = False,
	retries: int | None = None,
	backoff=None,
	priority: str | None = None,
	run_at=None,
	depends_on=None,
	organization: str | None = None,
	reference_doctype: str | None = None,
	reference_name: str | None = None,
	**kwargs,
) -> dict:
	if on_success or on_failure:
		frappe.throw(
			_("dartwing.enqueue does not take on_success / on_failure: read the job's status and history")
		)
	job_id = job_id or job_name
	if deduplicate and not job_id:
		frappe.throw(_("`job_id` is required for deduplication"))
	path = method_jobs.method_path(method)
	method_jobs.check_call(path, kwargs)
	if now or not is_async:
		return frappe.call(path, **kwargs)

	job_type = method_jobs.ensure_job_type(
		path, method_jobs.declared_values(queue=queue, timeout=timeout, retries=retries, backoff_spec=backoff)
	)
	return submit.submit(
		job_type,
		parameters=kwargs,
		organization=organization,
		priority=priority or ("High" if at_front else None),
		depends_on=depends_on,
		run_at=run_at,
		reference_doctype=reference_doctype,
		reference_name=reference_name,
		correlation_id=job_id,
		dedup_key=hashing.parameters_hash(job_type, "job_id", {"job_id": job_id}) if deduplicate else None,
		server_side=True,
	)


def job(queue: str | None = None, timeout: int | None = None, retries: int | None = None, backoff=None):
	"""``@dartwing.job(retries=5, timeout=600)``: the function gains ``.enqueue(**kwargs)``."""

	def decorate(function):
		def enqueue_function(**kwargs):
			for key, value in (
				("queue", queue),
				("timeout", timeout),
				("retries", retries),
				("backoff", backoff),
			):
				if value is not None:
					kwargs.setdefault(key, value)
			return enqueue(function, **kwargs)

		function.enqueue = enqueue_function
		return function

	return decorate
