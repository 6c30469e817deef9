"""Job Types that run a plain function (``dartwing.enqueue`` / ``@dartwing.job``), not a handler key.

Contract:
- ``method_path(method)`` is the dotted path of a module-level function (or the path given),
  checked to import to a function; anything else is refused with ``InvalidCallError`` (a
  ``TypeError`` for Python callers, HTTP 417 over the API).
- ``check_call(path, parameters)`` binds the parameters (keyword arguments) to the function's
  signature and refuses a call that could not run with ``InvalidCallError`` naming the argument
  (unexpected, missing, positional only), before anything is stored. A function taking
  ``**kwargs`` accepts any. Signatures are cached per function object, so the check costs a bind.
- ``ensure_job_type(path, declared)`` returns the Job Type of that function, named after it,
  creating it on first use. ``declared`` holds what code says (queue, timeout_seconds,
  max_retries, backoff): the Job Type takes it when it is created and again whenever the code's
  declaration changes; edits made in Desk stand until then.
- Only this module sets a Job Type's ``method``: the Job Type controller refuses a new or changed
  method unless ``registering(path)`` is in force for that path, which only server code can do
  (no request can set ``frappe.flags``). The method is signed with the site's encryption key, and
  ``runner(job_type)`` imports it only if its signature holds, so no edit made around the
  controller (a data import, SQL) can make a worker import an arbitrary path.
- ``runner(job_type)`` is what the executor calls with the job's context: the function is called
  with the job's parameters as keyword arguments, bound to its signature first. Parameters that no
  longer bind (the function changed between submit and run) raise ``UnrunnableCall``: the job
  goes to Dead Letter at once, no retry spent.
"""

import hashlib
import hmac
import inspect
import json
import weakref
from collections.abc import Callable
from contextlib import contextmanager

import frappe
from frappe import _
from frappe.utils import cint

from dartwing.dartwing_core.background_jobs import backoff
from dartwing.dartwing_core.background_jobs.api_errors import InvalidCallError, UnknownHandlerError
from dartwing.dartwing_core.background_jobs.handler_errors import UnrunnableCall

DECLARABLE = ("queue", "timeout_seconds", "max_retries", "backoff_strategy", "backoff_base_seconds",
	"backoff_schedule")  # fmt: skip
_FLAG = "dartwing_registering_method"
_POSITIONAL_ONLY, _VAR_POSITIONAL = inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL
_signatures: "weakref.WeakKeyDictionary[Callable, inspect.Signature]" = weakref.WeakKeyDictionary()


def method_path(method) -> str:
	if callable(method):
		module, qualname = getattr(method, "__module__", None), getattr(method, "__qualname__", "")
		if not module or not qualname or "<" in qualname or "." in qualname:
			frappe.throw(
				_("Only a module-level function can run as a job, not {0}").format(repr(method)),
				InvalidCallError,
			)
		path = f"{module}.{qualname}"
	elif isinstance(method, str) and method.strip():
		path = method.strip()
	else:
		frappe.throw(_("method must be a function or its dotted path"), InvalidCallError)
	_function(path)
	return path


def _function(path: str) -> Callable:
	"""The function at ``path``; ``InvalidCallError`` if it does not import to one."""
	try:
		target = frappe.get_attr(path)
	except Exception as exc:
		frappe.throw(_("{0} cannot be imported: {1}").format(path, exc), InvalidCallError)
	if not inspect.isfunction(inspect.unwrap(target)):
		frappe.throw(_("{0} is not a function").format(path), InvalidCallError)
	return target


def _signature(function: Callable) -> inspect.Signature:
	try:
		return _signatures[function]
	except (KeyError, TypeError):  # not seen yet, or not weakly referenceable (then not cached)
		signature = inspect.signature(function)
	try:
		_signatures[function] = signature
	except TypeError:
		pass
	return signature


def binding_error(function: Callable, parameters: dict) -> str | None:
	"""Why ``function(**parameters)`` cannot be called, in Python's words, or None if it can.
	Unexpected keywords are named first, as Python's own call does."""
	signature = _signature(function)
	try:
		signature.bind(**parameters)
	except TypeError as exc:
		accepted = signature.parameters
		if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
			unexpected = [
				repr(name)
				for name in parameters
				if name not in accepted or accepted[name].kind in (_POSITIONAL_ONLY, _VAR_POSITIONAL)
			]
			if unexpected:
				return _("got an unexpected keyword argument {0}").format(", ".join(unexpected))
		return str(exc)
	return None


def check_call(path: str, parameters: dict) -> None:
	"""Refuse (``InvalidCallError``) a call of ``path`` that could not run with ``parameters``."""
	if error := binding_error(_function(path), parameters):
		frappe.throw(
			_("{0} cannot be called with these arguments: {1}").format(path, error), InvalidCallError
		)


def declared_values(queue=None, timeout=None, retries=None, backoff_spec=None) -> dict:
	"""Job Type fields from ``dartwing.enqueue``'s arguments (only those given)."""
	values = {}
	if queue:
		values["queue"] = queue
	if timeout is not None:
		values["timeout_seconds"] = cint(timeout)
	if retries is not None:
		values["max_retries"] = cint(retries)
	if backoff_spec is not None:
		values.update(_backoff_fields(backoff_spec))
	return values


def _backoff_fields(spec) -> dict:
	"""``"exponential"``, a fixed delay in seconds, or a schedule such as ``"0,60,300"``."""
	if isinstance(spec, str) and spec.strip().lower() == "exponential":
		return {"backoff_strategy": backoff.EXPONENTIAL}
	if isinstance(spec, int | float) and not isinstance(spec, bool):
		return {"backoff_strategy": "Fixed", "backoff_base_seconds": cint(spec)}
	if isinstance(spec, str | list | tuple):
		schedule = ",".join(str(v).strip() for v in spec) if isinstance(spec, list | tuple) else spec
		try:
			backoff.parse_schedule(schedule)
		except ValueError as exc:
			frappe.throw(_("backoff: {0}").format(exc))
		return {"backoff_strategy": "Schedule", "backoff_schedule": schedule}
	frappe.throw(_("backoff must be 'exponential', a delay in seconds or a schedule like '0,60,300'"))


def sign(path: str) -> str:
	from frappe.utils.password import get_encryption_key

	return hmac.new(
		get_encryption_key().encode(), f"dartwing-method:{path}".encode(), hashlib.sha256
	).hexdigest()


def signature_holds(job_type) -> bool:
	return bool(job_type.method and job_type.method_signature) and hmac.compare_digest(
		job_type.method_signature, sign(job_type.method)
	)


@contextmanager
def registering(path: str):
	previous = frappe.flags.get(_FLAG)
	frappe.flags[_FLAG] = path
	try:
		yield
	finally:
		frappe.flags[_FLAG] = previous


def check_method_change(job_type) -> None:
	"""Job Type controller: a method may only be set or changed by ``ensure_job_type``."""
	before = job_type.get_doc_before_save()
	old = (before.method or None, before.method_signature or None) if before else (None, None)
	if (job_type.method or None, job_type.method_signature or None) == old:
		return
	if job_type.method and frappe.flags.get(_FLAG) == job_type.method:
		return
	frappe.throw(
		_("The method of a Job Type is set by code (dartwing.enqueue or @dartwing.job), not by hand"),
		frappe.PermissionError,
	)


def ensure_job_type(path: str, declared: dict | None = None) -> str:
	declared = {k: v for k, v in (declared or {}).items() if k in DECLARABLE}
	encoded = json.dumps(declared, sort_keys=True)
	existing = frappe.db.get_value("Job Type", path, ["name", "method", "declared_by_code"], as_dict=True)
	if existing:
		if existing.method != path:
			frappe.throw(
				_("Job Type {0} exists and does not run that function").format(frappe.bold(path)),
				UnknownHandlerError,
			)
		if declared and (existing.declared_by_code or "{}") != encoded:
			doc = frappe.get_doc("Job Type", path)
			doc.update({**declared, "declared_by_code": encoded})
			doc.save(ignore_permissions=True)
		return path
	doc = frappe.get_doc(
		{
			"doctype": "Job Type",
			"job_type_name": path,
			"title": path.rsplit(".", 1)[-1].replace("_", " ").capitalize(),
			"method": path,
			"method_signature": sign(path),
			"queue": "default",
			"timeout_seconds": 300,
			"max_retries": 3,
			"declared_by_code": encoded,
			"description": _("Runs {0}; created by its first dartwing.enqueue").format(path),
			**declared,
		}
	)
	frappe.db.savepoint("dartwing_method_job_type")
	messages_before = len(frappe.local.message_log)
	try:
		with registering(path):
			doc.insert(ignore_permissions=True)
	except frappe.DuplicateEntryError:
		# Another process created it first.
		frappe.db.rollback(save_point="dartwing_method_job_type")
		del frappe.local.message_log[messages_before:]
	return path


def runner(job_type) -> Callable:
	"""The callable the executor runs with the job's context."""
	if not signature_holds(job_type):
		raise UnknownHandlerError(
			_("Job Type {0} names a method that was not registered by code").format(job_type.name)
		)
	function = frappe.get_attr(job_type.method)

	def run(context):
		if error := binding_error(function, context.parameters):
			raise UnrunnableCall(
				_("{0} cannot be called with the job's parameters: {1}").format(job_type.method, error)
			)
		return function(**context.parameters)

	return run
