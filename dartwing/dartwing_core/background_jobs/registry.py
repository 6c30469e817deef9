"""Handler and precondition registries, built from app hooks.

Contract: apps declare ``dartwing_job_handlers = {"key": "app.module.function"}`` and
``dartwing_job_preconditions = {"key": "app.module.function"}`` in ``hooks.py``. A Job Type names
a *key*, never an import path; ``resolve_handler`` / ``resolve_precondition`` refuse any key that
no installed app registered (``UnknownHandlerError``), at save, at submit and at run time.
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


def _resolve(hook: str, key: str, kind: str) -> Callable:
	path = _registry(hook).get(key or "")
	if not path:
		raise UnknownHandlerError(
			_("{0} {1} is not registered by any installed app (hook {2})").format(
				kind, frappe.bold(key), hook
			)
		)
	return frappe.get_attr(path)


def resolve_handler(key: str) -> Callable:
	return _resolve(HANDLERS_HOOK, key, _("Handler"))


def resolve_precondition(key: str) -> Callable:
	return _resolve(PRECONDITIONS_HOOK, key, _("Precondition"))


def validate_handler_key(key: str) -> None:
	if key not in handlers():
		raise UnknownHandlerError(
			_("Handler {0} is not registered. Registered handlers: {1}").format(
				frappe.bold(key), ", ".join(sorted(handlers())) or _("none")
			)
		)


def validate_precondition_key(key: str) -> None:
	if key and key not in preconditions():
		raise UnknownHandlerError(
			_("Precondition {0} is not registered. Registered preconditions: {1}").format(
				frappe.bold(key), ", ".join(sorted(preconditions())) or _("none")
			)
		)
