"""A submission's input, read and checked before anything is created.

Contract: each function returns the checked value or raises a Frappe exception with the HTTP
status the caller should get, creating nothing:
- ``parse_parameters(parameters)``: a JSON object (a dict or its JSON text) of JSON values, within
  the settings' ``max_parameters_kb``, returned in canonical form;
- ``parse_job_list(value, argument)``: a job id, a comma-separated list or a JSON list of them,
  returned without repeats;
- ``load_job_type(job_type, user)``: the Job Type, existing, enabled, with a registered handler,
  and the caller holding its required role (managers need none);
- ``check_parents(parents, organization)``: each parent is a job of the same organization (a
  foreign and a missing one answer alike); their status is read later, under their row locks
  (``dispatch.hold_parents``);
- ``check_reference(reference_doctype, reference_name)``: both or neither; a document the caller
  may read (a foreign and a missing one answer alike).
"""

import json
from typing import Any

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs import hashing, registry
from dartwing.dartwing_core.background_jobs.permissions import is_manager
from dartwing.dartwing_core.background_jobs.settings import get_settings


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


def load_job_type(job_type: str, user: str):
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


def check_parents(parents: list[str], organization: str) -> None:
	"""Each parent must be a job of ``organization``."""
	if not parents:
		return
	found = dict(
		frappe.db.sql(
			"SELECT name, organization FROM `tabBackground Job` WHERE name IN %s", (tuple(parents),)
		)
	)
	for parent in parents:
		if found.get(parent) != organization:
			frappe.throw(
				_("Parent job {0} not found in organization {1}").format(parent, organization),
				frappe.DoesNotExistError,
			)


def check_reference(reference_doctype: str | None, reference_name: str | None) -> None:
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
