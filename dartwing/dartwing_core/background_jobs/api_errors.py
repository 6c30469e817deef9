"""Frappe exceptions the engine and the API raise, each with the HTTP status a caller should see.

Contract: bad input -> ``frappe.ValidationError`` (417) or a subclass; not allowed -> 403;
a call of a function that could not run (``dartwing.enqueue``, a method
job submitted over the API) -> ``InvalidCallError``, 417 and a ``TypeError``; no such job -> 404; duplicate in strict mode -> 409; rate limited -> 429 (``retry_after`` set);
a precondition that says no -> 412; a precondition that could not answer in time -> 503.
"""

import frappe


class InvalidTransitionError(frappe.ValidationError):
	http_status_code = 409


class UnknownHandlerError(frappe.ValidationError):
	pass


class InvalidCallError(frappe.ValidationError, TypeError):
	"""The function does not exist, or does not take these arguments: Python callers get the
	``TypeError`` the call itself would raise, HTTP callers 417 (bad input)."""


class DuplicateJobError(frappe.DuplicateEntryError):
	http_status_code = 409


class JobRateLimitedError(frappe.RateLimitExceededError):
	http_status_code = 429

	def __init__(self, message: str = "", retry_after: int = 0):
		super().__init__(message)
		self.retry_after = retry_after


class PreconditionFailedError(frappe.ValidationError):
	http_status_code = 412


class PreconditionUnavailableError(frappe.ValidationError):
	http_status_code = 503


class OrganizationSuspendedError(frappe.PermissionError):
	pass
