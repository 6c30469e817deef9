"""Submitting a job: every check, then one atomic insert, then the push after commit.

Contract: ``submit(job_type, parameters, ...)`` returns ``{"job_id", "status", "deduplicated"}``.
Checks run in this order and any refusal leaves nothing behind:
1. the input is well formed (types, parameter size, priority, run_at, parents, reference);
2. the job type exists, is enabled and the caller has its required role; the organization
   exists, is Active and the caller is a member (managers may submit for any organization);
3. the job type's precondition, in its own thread with its own timeout, its own ``frappe.local``
   and database connection (never the caller's); a timeout is a temporary failure (HTTP 503), and
   so is a check refused at once because ``MAX_CHECKS_PER_CALLER`` checks of this job type and
   user (or ``MAX_CHECKS_IN_FLIGHT`` in the process) are still running, so hung checks cannot
   hold up anyone else's; a refusal is HTTP 412 and logs a WARNING with the subject and the
   parameters hash;
4. the per-user rate limit of the job type (HTTP 429);
5. deduplication: while a job with the same hash is active, or finished less than the dedup
   window ago, that job is returned with ``deduplicated: true`` (``strict`` turns it into HTTP
   409). A unique index on ``dedup_key`` makes this atomic under concurrency;
6. ``dispatch.admission`` decides what the job is at once (Pending while a parent, ``run_at``,
   a pause or a full concurrency key holds it back; Queued otherwise; Failed after a parent
   that ended badly), then the insert (the row and its dependency rows written with SQL, as
   every later change of a job is: no document events run) with its Submitted log row, and a
   Queued job's Pending -> Queued log row; the RQ push happens only after commit.
Runs of a Job Schedule (``job_schedule``, ``scheduled_for``) skip step 5: the schedule's
overlap policy decides instead. A caller's own ``dedup_key`` replaces the parameters hash in
step 5 and holds only while its job is active (``dartwing.enqueue``'s ``job_id`` +
``deduplicate``). ``server_side=True`` is for code, never for a request: the organization may then
be omitted (the site's obvious one) and need not have the session user as a member.
When no organization is named, the caller's only one is used; managers get the site's obvious
one (``settings.obvious_organization``) as well.
"""

import json
import threading
from datetime import timedelta
from typing import Any

import frappe
from frappe import _
from frappe.model.naming import make_autoname
from frappe.utils import cint, flt, now_datetime

from dartwing.dartwing_core.background_jobs import (
	clock,
	dispatch,
	execution_log,
	hashing,
	rate_limit,
	registry,
	states,
	stored_text,
)
from dartwing.dartwing_core.background_jobs.api_errors import (
	DuplicateJobError,
	OrganizationSuspendedError,
	PreconditionFailedError,
	PreconditionUnavailableError,
)
from dartwing.dartwing_core.background_jobs.handler_errors import PermanentError, TransientError
from dartwing.dartwing_core.background_jobs.jobs_logger import jobs_logger
from dartwing.dartwing_core.background_jobs.permissions import is_manager, user_organizations
from dartwing.dartwing_core.background_jobs.priority import (
	PRIORITY_RANK,
	claim_order_sql,
	epoch_seconds,
	rank,
)
from dartwing.dartwing_core.background_jobs.settings import get_settings, obvious_organization

PRIORITIES = tuple(PRIORITY_RANK)
JOB_DOCTYPE = "Background Job"
DEPENDENCY_DOCTYPE = "Background Job Dependency"
# Preconditions run side by side, never queued behind each other; hung ones hold a thread and a
# database connection each until they return, so their number is bounded per caller and in all.
MAX_CHECKS_PER_CALLER = 4
MAX_CHECKS_IN_FLIGHT = 32


def parse_parameters(parameters: Any) -> dict:
	if parameters in (None, ""):
		return {}
	if isinstance(parameters, str):
		try:
			parameters = json.loads(parameters)
		except (ValueError, RecursionError) as exc:
			frappe.throw(_("Parameters must be a JSON object: {0}").format(exc), frappe.ValidationError)
	if not isinstance(parameters, dict):
		frappe.throw(_("Parameters must be a JSON object, not {0}").format(type(parameters).__name__))
	try:
		encoded = hashing.canonical_json(parameters)
	except (TypeError, ValueError, RecursionError) as exc:
		frappe.throw(_("Parameters must contain only JSON values: {0}").format(exc))
	limit_kb = get_settings().max_parameters_kb
	if limit_kb and len(encoded.encode()) > limit_kb * 1024:
		frappe.throw(
			_("Parameters are {0} KB; the limit is {1} KB").format(len(encoded.encode()) // 1024, limit_kb),
			frappe.ValidationError,
			title=_("Parameters too large"),
		)
	return json.loads(encoded)


def parse_job_list(value: Any, argument: str = "depends_on") -> list[str]:
	if value in (None, "", []):
		return []
	refusal = _("{0} must be a job id or a list of job ids").format(argument)
	if isinstance(value, str):
		stripped = value.strip()
		try:
			value = (
				json.loads(stripped) if stripped.startswith("[") else [v.strip() for v in stripped.split(",")]
			)
		except (ValueError, RecursionError):
			frappe.throw(refusal)
	if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
		frappe.throw(refusal)
	return list(dict.fromkeys(value))


def _resolve_organization(organization: str | None, user: str, server_side: bool = False) -> str:
	"""The named organization, checked; when none is named, the one that is obvious.

	Obvious: the caller's only organization; for managers and server-side code, else the site's
	(``settings.obvious_organization``: the default one, or the only one).
	"""
	if not organization:
		memberships = user_organizations(user)
		if len(memberships) == 1:
			return memberships[0]
		if server_side or is_manager(user):
			organization = obvious_organization()
			if not organization:
				frappe.throw(
					_(
						"This site has several organizations and no default one; name the organization "
						"(or set a Default Organization in Background Job Settings)"
					)
				)
		elif not memberships:
			frappe.throw(_("You are not a member of any organization"), frappe.PermissionError)
		else:
			frappe.throw(
				_("You belong to several organizations ({0}); say which one").format(
					", ".join(sorted(memberships))
				)
			)
	status = frappe.get_cached_value("Organization", organization, "status")
	if status is None or not (server_side or is_manager(user) or organization in user_organizations(user)):
		# The same answer for an organization that does not exist and one the caller is not in.
		frappe.throw(_("Organization {0} not found").format(organization), frappe.DoesNotExistError)
	if status != "Active":
		frappe.throw(
			_("Organization {0} is suspended; its jobs cannot be submitted").format(
				frappe.bold(organization)
			),
			OrganizationSuspendedError,
		)
	return organization


def _load_job_type(job_type: str, user: str):
	doc = None
	if job_type and isinstance(job_type, str):
		messages_before = len(frappe.local.message_log)
		try:
			doc = frappe.get_cached_doc("Job Type", job_type)
		except frappe.DoesNotExistError:
			del frappe.local.message_log[messages_before:]
	if doc is None:
		frappe.throw(_("Job type {0} does not exist").format(frappe.bold(job_type)), frappe.ValidationError)
	if not doc.enabled:
		frappe.throw(_("Job type {0} is disabled").format(frappe.bold(job_type)))
	if doc.required_role and not is_manager(user) and doc.required_role not in frappe.get_roles(user):
		frappe.throw(
			_("Job type {0} needs the role {1}").format(
				frappe.bold(job_type), frappe.bold(doc.required_role)
			),
			frappe.PermissionError,
		)
	registry.validate_job_type(doc)
	return doc


def _check_parents(parents: list[str], organization: str) -> list[frappe._dict]:
	"""The parents with their status; each must be a job of the same organization."""
	if not parents:
		return []
	found = {
		row.name: row
		for row in frappe.db.sql(
			"SELECT name, organization, status FROM `tabBackground Job` WHERE name IN %s",
			(tuple(parents),),
			as_dict=True,
		)
	}
	for parent in parents:
		if parent not in found or found[parent].organization != organization:
			frappe.throw(
				_("Parent job {0} not found in organization {1}").format(parent, organization),
				frappe.DoesNotExistError,
			)
	return [found[parent] for parent in parents]


def _check_reference(reference_doctype: str | None, reference_name: str | None) -> None:
	if not reference_doctype and not reference_name:
		return
	if not (reference_doctype and reference_name):
		frappe.throw(_("Give both reference_doctype and reference_name, or neither"))
	if not (
		isinstance(reference_doctype, str)
		and isinstance(reference_name, str)
		and frappe.db.exists("DocType", reference_doctype)
		and not frappe.get_meta(reference_doctype).istable
		and frappe.db.exists(reference_doctype, reference_name)
		and frappe.has_permission(reference_doctype, "read", reference_name)
	):
		# The same answer for a document that does not exist and one the caller cannot read.
		frappe.throw(
			_("{0} {1} not found").format(reference_doctype, reference_name), frappe.DoesNotExistError
		)


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


def _find_dedup_match(dedup_key: str, window_seconds: int, locking: bool) -> frappe._dict | None:
	rows = frappe.db.sql(
		f"""SELECT name, status, finished_at FROM `tabBackground Job` WHERE dedup_key = %s
		{"LOCK IN SHARE MODE" if locking else ""}""",
		dedup_key,
		as_dict=True,
	)
	if not rows:
		return None
	match = rows[0]
	if match.status in states.ACTIVE:
		return match
	if match.finished_at and match.finished_at > now_datetime() - timedelta(seconds=window_seconds):
		return match
	# Outside the window: the old job gives up the key.
	frappe.db.sql(
		"UPDATE `tabBackground Job` SET dedup_key = NULL WHERE name = %s AND dedup_key = %s",
		(match.name, dedup_key),
	)
	return None


def claim_dedup_key(job: str, dedup_key: str) -> frappe._dict | None:
	"""Give ``job`` (a row this transaction has locked) ``dedup_key`` through the unique index, as
	a submission does. Returns the *active* job that holds the key instead; a job that has ended
	gives it up. Concurrent claims are serialised by the index: the second waits for the first's
	commit and then sees it."""
	for _attempt in range(3):
		frappe.db.savepoint("dartwing_dedup_key")
		try:
			frappe.db.sql("UPDATE `tabBackground Job` SET dedup_key = %s WHERE name = %s", (dedup_key, job))
			return None
		except Exception as exc:
			if not frappe.db.is_unique_key_violation(exc):
				raise
			frappe.db.rollback(save_point="dartwing_dedup_key")
		if match := _find_dedup_match(dedup_key, 0, locking=True):
			return match
	raise DuplicateJobError(_("The dedup key of {0} is contended; try again").format(job))


def _deduplicated(match: frappe._dict, job_type: str, organization: str, user: str, strict: bool) -> dict:
	if strict:
		raise DuplicateJobError(_("An identical {0} job already exists: {1}").format(job_type, match.name))
	execution_log.record(
		match.name,
		states.EVENT_DEDUPLICATED,
		organization=organization,
		job_type=job_type,
		from_status=match.status,
		to_status=match.status,
		actor=user,
		message=_("An identical submission returned this job"),
	)
	return {"job_id": match.name, "status": match.status, "deduplicated": True}


def submit(
	job_type: str,
	parameters: Any = None,
	organization: str | None = None,
	priority: str | None = None,
	depends_on: Any = None,
	run_at: Any = None,
	reference_doctype: str | None = None,
	reference_name: str | None = None,
	correlation_id: str | None = None,
	strict: bool = False,
	job_schedule: str | None = None,
	scheduled_for: Any = None,
	dedup_key: str | None = None,
	server_side: bool = False,
) -> dict:
	user = frappe.session.user
	if user == "Guest" and not server_side:
		frappe.throw(_("Log in to submit jobs"), frappe.PermissionError)

	parameters = parse_parameters(parameters)
	parents = parse_job_list(depends_on)
	run_at, run_at_utc = clock.parse_input(run_at, "run_at") or (None, None)
	if priority and priority not in PRIORITIES:
		frappe.throw(_("Priority must be one of {0}").format(", ".join(PRIORITIES)))

	job_type_doc = _load_job_type(job_type, user)
	organization = _resolve_organization(organization, user, server_side)
	parent_rows = _check_parents(parents, organization)
	_check_reference(reference_doctype, reference_name)
	try:
		concurrency_key = hashing.render_concurrency_key(
			job_type_doc.concurrency_key_template,
			{**parameters, "owner": user, "organization": organization, "job_type": job_type_doc.name},
		)
	except hashing.MissingKeyPlaceholder as exc:
		frappe.throw(
			_("Parameter {0} is needed to build the concurrency key").format(frappe.bold(exc.args[0]))
		)
	params_hash = hashing.parameters_hash(job_type_doc.name, organization, parameters)

	run_precondition(job_type_doc, parameters, user, organization, params_hash)
	rate_limit.hit(
		f"job_type:{job_type_doc.name}",
		user,
		cint(job_type_doc.rate_limit_count),
		cint(job_type_doc.rate_limit_window_seconds),
	)

	# A schedule's runs are told apart by their due time, not deduplicated against each other.
	window = 0 if job_schedule or dedup_key else cint(job_type_doc.dedup_window_seconds)
	dedup_key = dedup_key or (params_hash if window > 0 else None)
	if dedup_key and (match := _find_dedup_match(dedup_key, window, locking=False)):
		return _deduplicated(match, job_type_doc.name, organization, user, strict)

	if correlation_id is not None and (
		not isinstance(correlation_id, str) or len(correlation_id) > stored_text.DATA_LENGTH
	):
		frappe.throw(
			_("correlation_id must be text of at most {0} characters").format(stored_text.DATA_LENGTH),
			frappe.ValidationError,
		)
	row = frappe._dict(
		name=make_autoname(frappe.get_meta(JOB_DOCTYPE).autoname, JOB_DOCTYPE),
		owner=user,
		job_type=job_type_doc.name,
		organization=organization,
		status=states.PENDING,
		priority=priority or job_type_doc.priority or "Normal",
		queue=job_type_doc.queue,
		parameters=hashing.canonical_json(parameters),
		parameters_hash=params_hash,
		dedup_key=dedup_key,
		concurrency_key=stored_text.plain(f"{organization}:{concurrency_key}", stored_text.DATA_LENGTH)
		if concurrency_key
		else None,
		run_at=run_at,
		run_at_utc=run_at_utc,
		reference_doctype=reference_doctype or None,
		reference_name=reference_name or None,
		max_retries=cint(job_type_doc.max_retries),
		timeout_seconds=cint(job_type_doc.timeout_seconds),
		correlation_id=stored_text.plain(correlation_id, stored_text.DATA_LENGTH)
		if correlation_id
		else frappe.generate_hash(length=16),
		job_schedule=job_schedule,
		scheduled_for=scheduled_for,
		attempt=0,
		worker=None,
		rq_job_id=None,
	)
	status, failed_parent = dispatch.admission(row, parent_rows)
	token = dispatch.queue_on_insert(row) if status == states.QUEUED else None
	if dedup_key:
		frappe.db.savepoint("dartwing_submit")
		try:
			_insert_job(row, parents)
		except Exception as exc:
			if not frappe.db.is_unique_key_violation(exc):
				raise
			frappe.db.rollback(save_point="dartwing_submit")
			match = _find_dedup_match(dedup_key, window, locking=True)
			if not match:
				raise
			return _deduplicated(match, job_type_doc.name, organization, user, strict)
	else:
		_insert_job(row, parents)

	execution_log.record(
		row.name,
		states.EVENT_SUBMITTED,
		organization=organization,
		job_type=row.job_type,
		to_status=states.PENDING,
		actor=user,
		message=_("Priority {0}").format(row.priority),
	)
	if failed_parent:
		dispatch.fail_for_parent(row.name, failed_parent.name, failed_parent.status, locked_row=row)
	elif token:
		dispatch.announce_queued_on_insert(row, token)
	return {"job_id": row.name, "status": status, "deduplicated": False}


def _insert_job(row: frappe._dict, parents: list[str]) -> None:
	"""The job's row and its dependency rows, written directly like every later change of the job
	(no document events: the engine's rows change only through the engine). A job inserted as
	Queued gets its claim key in the same statement."""
	now = now_datetime()
	standard = {"creation": now, "modified": now, "modified_by": row.owner, "docstatus": 0, "idx": 0}
	expressions = {}
	if row.status == states.QUEUED:
		expressions["claim_order"] = claim_order_sql("%s", str(rank(row.priority)))
	_insert_rows(
		JOB_DOCTYPE,
		[{**row, **standard}],
		expressions,
		[epoch_seconds(clock.site_to_utc(row.queued_at))] if expressions else [],
	)
	_insert_rows(
		DEPENDENCY_DOCTYPE,
		[
			{
				"name": frappe.generate_hash(length=10),
				"owner": row.owner,
				**standard,
				"idx": index,
				"parent": row.name,
				"parentfield": "depends_on",
				"parenttype": JOB_DOCTYPE,
				"depends_on": parent,
			}
			for index, parent in enumerate(parents, start=1)
		],
	)


def _insert_rows(
	doctype: str, rows: list[dict], expressions: dict[str, str] | None = None, expression_values=()
) -> None:
	"""Multi-row INSERT of ``rows`` (same columns each); ``expressions`` are SQL for more columns
	(one row only), their placeholders filled from ``expression_values``."""
	if not rows:
		return
	expressions = expressions or {}
	columns = list(rows[0])
	placeholders = f"({', '.join(['%s'] * len(columns) + list(expressions.values()))})"
	frappe.db.sql(
		f"""INSERT INTO `tab{doctype}` ({", ".join(f"`{column}`" for column in [*columns, *expressions])})
		VALUES {", ".join([placeholders] * len(rows))}""",
		[value for row in rows for value in [*(row[column] for column in columns), *expression_values]],
	)
