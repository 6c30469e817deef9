"""A job type's precondition, checked before a submission creates anything.

Contract: ``run_precondition(job_type, parameters, user, organization, params_hash)`` returns when
the check passes (or the type has none) and raises otherwise. The check runs in its own thread
with its own timeout (the type's ``precondition_timeout_seconds``, default 5 s), its own
``frappe.local`` and database connection (rolled back, never the caller's). A timeout is a
temporary failure (``PreconditionUnavailableError``, HTTP 503), and so is a check refused at once
because ``MAX_CHECKS_PER_CALLER`` checks of this job type and user (or ``MAX_CHECKS_IN_FLIGHT`` in
the process) are still running, so hung checks cannot hold up anyone else's; a ``TransientError``
from the check is one too. A refusal (False, a reason string, ``PermanentError`` or
``ValidationError``) is ``PreconditionFailedError`` (HTTP 412) and logs a WARNING with the
subject and the parameters hash.
"""

import threading

import frappe
from frappe import _
from frappe.utils import flt

from dartwing.dartwing_core.background_jobs import registry
from dartwing.dartwing_core.background_jobs.api_errors import (
	PreconditionFailedError,
	PreconditionUnavailableError,
)
from dartwing.dartwing_core.background_jobs.handler_errors import PermanentError, TransientError
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger

# database connection each until they return, so their number is bounded per caller and in all.
MAX_CHECKS_PER_CALLER = 4
MAX_CHECKS_IN_FLIGHT = 32


class _Bulkhead:
	"""At most ``per_caller`` checks in flight for one (job type, user), ``total`` in the process.
	A hung check keeps its slot until it returns; a submit that finds no slot is refused at once."""

	def __init__(self, per_caller: int, total: int):
		self.per_caller, self.total = per_caller, total
		self._lock = threading.Lock()
		self._in_flight: dict[tuple[str, str], int] = {}

	def enter(self, caller: tuple[str, str]) -> bool:
		with self._lock:
			if (
				sum(self._in_flight.values()) >= self.total
				or self._in_flight.get(caller, 0) >= self.per_caller
			):
				return False
			self._in_flight[caller] = self._in_flight.get(caller, 0) + 1
			return True

	def leave(self, caller: tuple[str, str]) -> None:
		with self._lock:
			self._in_flight[caller] -= 1
			if not self._in_flight[caller]:
				del self._in_flight[caller]


_precondition_slots = _Bulkhead(MAX_CHECKS_PER_CALLER, MAX_CHECKS_IN_FLIGHT)


class _CheckCall:
	"""One precondition call in a thread of its own, with its own ``frappe.local`` and database
	connection (rolled back, never committed): the submitting request's is never touched, even by
	a check that outlives its timeout."""

	def __init__(self, check, caller: tuple[str, str], user: str, kwargs: dict):
		self.check, self.caller, self.user, self.kwargs = check, caller, user, kwargs
		self.site, self.sites_path = frappe.local.site, frappe.local.sites_path
		self.done = threading.Event()
		self.value = None
		self.error: BaseException | None = None

	def start(self) -> None:
		threading.Thread(target=self._run, name="dartwing-precondition", daemon=True).start()

	def _run(self) -> None:
		try:
			frappe.init(site=self.site, sites_path=self.sites_path)
			frappe.connect()
			frappe.set_user(self.user)
			self.value = self.check(**self.kwargs)
		except BaseException as exc:
			self.error = exc
		finally:
			try:
				if getattr(frappe.local, "db", None):
					frappe.db.rollback()
				frappe.destroy()
			except Exception:
				pass
			_precondition_slots.leave(self.caller)
			self.done.set()


def run_precondition(job_type, parameters: dict, user: str, organization: str, params_hash: str) -> None:
	if not job_type.precondition:
		return
	check = registry.resolve_precondition(job_type.precondition)
	timeout = flt(job_type.precondition_timeout_seconds) or 5.0
	subject = parameters.get("subject") or user

	def unavailable(event: str, message: str):
		jobs_logger().warning(
			{"event": event, "job_type": job_type.name, "subject": subject, "parameters_hash": params_hash}
		)
		frappe.throw(message, PreconditionUnavailableError)

	caller = (job_type.name, user)
	if not _precondition_slots.enter(caller):
		unavailable(
			"precondition_saturated",
			_("Too many precondition checks of {0} are still running; try again shortly").format(
				job_type.name
			),
		)
	call = _CheckCall(
		check, caller, user, {"parameters": parameters, "user": user, "organization": organization}
	)
	call.start()
	if not call.done.wait(timeout):
		unavailable(
			"precondition_timeout",
			_("The precondition of {0} did not answer within {1} s; try again shortly").format(
				job_type.name, timeout
			),
		)
	verdict = call.value
	if isinstance(call.error, TransientError):
		frappe.throw(
			_("The precondition of {0} could not be checked: {1}").format(job_type.name, call.error),
			PreconditionUnavailableError,
		)
	if isinstance(call.error, PermanentError | frappe.ValidationError):
		verdict = str(call.error) or False
	elif call.error is not None:
		raise call.error
	if verdict is None or verdict is True:
		return
	reason = verdict if isinstance(verdict, str) else _("precondition not met")
	jobs_logger().warning(
		{
			"event": "precondition_rejected",
			"job_type": job_type.name,
			"subject": subject,
			"parameters_hash": params_hash,
			"reason": reason,
		}
	)
	frappe.throw(_("{0} refused: {1}").format(job_type.name, reason), PreconditionFailedError)
