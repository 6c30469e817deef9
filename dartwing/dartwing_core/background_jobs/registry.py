"""Handler and precondition registries, built from app hooks.

Contract: apps declare ``dartwing_job_handlers = {"key": "app.module.function"}`` and
``dartwing_job_preconditions = {"key": "app.module.function"}`` in ``hooks.py``. A Job Type names
a *key*, never an import path; ``resolve_handler`` / ``resolve_precondition`` refuse any key that
no installed app registered (``UnknownHandlerError``), at save, at submit and at run time.
A Job Type made by ``dartwing.enqueue`` names a function instead (``method_jobs``, signed):
``validate_job_type`` and ``job_runner`` accept either and nothing else.
"""

from collections.abc import Callable

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs.api_errors import UnknownHandlerError

HANDLERS_HOOK = "dartwing_job_handlers"
PRECONDITIONS_HOOK = "dartwing_job_preconditions"


def _registry(hook: str) -> dict[str, str]:
	registered = {}
	for key, paths in (frappe.get_hooks(hook) or {}).items():
		path = paths[-1] if isinstance(paths, list | tuple) else paths
		if path:
			registered[key] = path
	return registered


def handlers() -> dict[str, str]:
	return _registry(HANDLERS_HOOK)


def preconditions() -> dict[str, str]:
	return _registry(PRECONDITIONS_HOOK)


def _resolve(hook: str, key: str, kind: Callable[[], str]) -> Callable:
	"""``kind``: the translated name of what is resolved, asked for only when it is missing."""
	path = _registry(hook).get(key or "")
	if not path:
		raise UnknownHandlerError(
			_("{0} {1} is not registered by any installed app (hook {2})").format(
				kind(), frappe.bold(key), hook
			)
		)
	return frappe.get_attr(path)


def resolve_handler(key: str) -> Callable:
	return _resolve(HANDLERS_HOOK, key, lambda: _("Handler"))


def resolve_precondition(key: str) -> Callable:
	return _resolve(PRECONDITIONS_HOOK, key, lambda: _("Precondition"))


def validate_handler_key(key: str) -> None:
	if key not in handlers():
		raise UnknownHandlerError(
			_("Handler {0} is not registered. Registered handlers: {1}").format(
				frappe.bold(key), ", ".join(sorted(handlers())) or _("none")
			)
		)


def validate_job_type(job_type) -> None:
	"""A Job Type runs a registered handler key, or a method registered by code (``method_jobs``)."""
	if job_type.get("method"):
		from dartwing.dartwing_core.background_jobs.method_jobs import signature_holds

		if not signature_holds(job_type):
			raise UnknownHandlerError(
				_("Job type {0} names a method that was not registered by code").format(
					frappe.bold(job_type.name)
				)
			)
		return
	validate_handler_key(job_type.handler)


def job_runner(job_type) -> Callable:
	"""What the executor calls with a job's context: the handler, or the method with the parameters."""
	if job_type.get("method"):
		from dartwing.dartwing_core.background_jobs.method_jobs import runner

		return runner(job_type)
	return resolve_handler(job_type.handler)


def validate_precondition_key(key: str) -> None:
	if key and key not in preconditions():
		raise UnknownHandlerError(
			_("Precondition {0} is not registered. Registered preconditions: {1}").format(
				frappe.bold(key), ", ".join(sorted(preconditions())) or _("none")
			)
		)
