"""Submitting a job: every check, then one atomic insert, then the push after commit.

Contract: ``submit(job_type, parameters, ...)`` returns ``{"job_id", "status", "deduplicated"}``.
Checks run in this order and any refusal leaves nothing behind:
1. the input is well formed (types, parameter size, priority, run_at, parents, reference:
   ``submit_input``);
2. the job type exists, is enabled and the caller has its required role; a job type that runs a
   function (``method_jobs``) takes only parameters that bind to its signature
   (``InvalidCallError``, HTTP 417, naming the argument); the organization exists, is Active and
   the caller is a member (managers may submit for any organization:
   ``tenancy.resolve_organization``);
3. the job type's precondition (``preconditions``: its own thread, timeout and database
   connection; a timeout or a saturated check is HTTP 503, a refusal HTTP 412);
4. the per-user rate limit of the job type (HTTP 429);
5. deduplication (``dedup``): while a job with the same hash is active, or finished less than the
   dedup window ago, that job is returned with ``deduplicated: true`` (``strict`` turns it into
   HTTP 409). A unique index on ``dedup_key`` makes this atomic under concurrency;
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
one (``tenancy.obvious_organization``) as well.
"""

from typing import Any

import frappe
from frappe import _
from frappe.model.naming import make_autoname
from frappe.utils import cint, now_datetime

from dartwing.dartwing_core.background_jobs import (
	clock,
	dispatch,
	execution_log,
	hashing,
	method_jobs,
	rate_limit,
	states,
	stored_text,
)
from dartwing.dartwing_core.background_jobs.dedup import deduplicated, find_dedup_match
from dartwing.dartwing_core.background_jobs.permissions import is_manager
from dartwing.dartwing_core.background_jobs.preconditions import run_precondition
from dartwing.dartwing_core.background_jobs.priority import (
	PRIORITY_RANK,
	claim_order_sql,
	epoch_seconds,
	rank,
)
from dartwing.dartwing_core.background_jobs.submit_input import (
	check_parents,
	check_reference,
	load_job_type,
	parse_job_list,
	parse_parameters,
)
from dartwing.dartwing_core.background_jobs.tenancy import resolve_organization

PRIORITIES = tuple(PRIORITY_RANK)
JOB_DOCTYPE = "Background Job"
DEPENDENCY_DOCTYPE = "Background Job Dependency"


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

	job_type_doc = load_job_type(job_type, user)
	if job_type_doc.method:
		method_jobs.check_call(job_type_doc.method, parameters)
	organization = resolve_organization(organization, user, server_side or is_manager(user))
	check_parents(parents, organization)
	check_reference(reference_doctype, reference_name)
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
	if dedup_key and (match := find_dedup_match(dedup_key, window, locking=False)):
		return deduplicated(match, job_type_doc.name, organization, user, strict)

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
	status, failed_parent = dispatch.admission(row, dispatch.hold_parents(parents))
	token = dispatch.queue_on_insert(row) if status == states.QUEUED else None
	if dedup_key:
		frappe.db.savepoint("dartwing_submit")
		try:
			_insert_job(row, parents)
		except Exception as exc:
			if not frappe.db.is_unique_key_violation(exc):
				raise
			frappe.db.rollback(save_point="dartwing_submit")
			match = find_dedup_match(dedup_key, window, locking=True)
			if not match:
				raise
			return deduplicated(match, job_type_doc.name, organization, user, strict)
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
