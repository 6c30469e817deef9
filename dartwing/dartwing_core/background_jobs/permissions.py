"""Who may see and touch which jobs: tenant isolation in one place.

Contract:
- Job managers (``Background Job Manager``, ``System Manager``, Administrator) see and manage
  every job.
- Everyone else sees the jobs, logs and organizations of the organizations they are members of,
  and nothing else; they may cancel their own jobs.
- The same rules back the Desk list, ``/api/resource``, reports, realtime rooms and the API
  (``permission_query_conditions`` / ``has_permission`` hooks), for every doctype that holds
  tenant data (``TENANT_DOCTYPES``), child tables included: an Organization Member row is
  readable with its organization, a Background Job Dependency row with its job. Frappe's
  endpoints that skip these hooks are covered by ``generic_endpoints``.
- ``can_read_row(doc)`` answers it for a loaded row, ``can_read_doc(doctype, name)`` for a row
  by name (False for a row that does not exist). In a web request a row the session user may
  not read is "not found" (``generic_endpoints.TenantDocument``), exactly like a missing one.
"""

import frappe

from dartwing.dartwing_core.background_jobs.tenancy import user_organizations

MANAGER_ROLES = frozenset({"Background Job Manager", "System Manager"})
USER_ROLE = "Background Job User"
MANAGER_ROLE = "Background Job Manager"
READ_PTYPES = frozenset({"read", "select", "report", "export", "print", "email"})
CHILD_PARENTS = {"Organization Member": "Organization", "Background Job Dependency": "Background Job"}
# The metrics rollups (``metrics_rollup``) hold counts per organization: System Managers read them
# in Desk; everyone else reads them only through the metrics, scoped by ``organization_scope``.
METRICS_ROLLUP_DOCTYPES = frozenset({"Job Metrics Count", "Job Metrics Histogram", "Job Metrics Period"})
# The organizations' turns in each queue (``turns``): System Managers read them in Desk.
TURN_DOCTYPES = frozenset({"Background Job Turn"})
TENANT_DOCTYPES = frozenset(
	{
		"Background Job",
		"Job Execution Log",
		"Organization",
		"Job Schedule",
		*CHILD_PARENTS,
		*METRICS_ROLLUP_DOCTYPES,
		*TURN_DOCTYPES,
	}
)


def is_manager(user: str | None = None) -> bool:
	user = user or frappe.session.user
	return user == "Administrator" or bool(MANAGER_ROLES.intersection(frappe.get_roles(user)))


def can_read_job(organization: str, user: str | None = None) -> bool:
	return is_manager(user) or organization in user_organizations(user)


def can_cancel_job(owner: str, organization: str, user: str | None = None) -> bool:
	user = user or frappe.session.user
	return is_manager(user) or (owner == user and organization in user_organizations(user))


def _organization_condition(column: str, user: str | None) -> str:
	user = user or frappe.session.user
	if is_manager(user):
		return ""
	organizations = user_organizations(user)
	if not organizations:
		return "1=0"
	return f"{column} in ({', '.join(frappe.db.escape(o) for o in organizations)})"


def organization_scope(column: str, user: str | None = None) -> str:
	"""The condition of ``background_job_query`` on another table's organization column ("" for
	managers): the metrics apply it to the rollups, so a member's figures hold only their jobs."""
	return _organization_condition(column, user)


def background_job_query(user: str | None = None) -> str:
	return _organization_condition("`tabBackground Job`.`organization`", user)


def job_execution_log_query(user: str | None = None) -> str:
	return _organization_condition("`tabJob Execution Log`.`organization`", user)


def organization_query(user: str | None = None) -> str:
	return _organization_condition("`tabOrganization`.`name`", user)


def organization_member_query(user: str | None = None) -> str:
	return _organization_condition("`tabOrganization Member`.`parent`", user)


def job_dependency_query(user: str | None = None) -> str:
	condition = _organization_condition("`tabBackground Job`.`organization`", user)
	if not condition:
		return ""
	return (
		"`tabBackground Job Dependency`.`parent` IN "
		f"(SELECT `tabBackground Job`.`name` FROM `tabBackground Job` WHERE {condition})"
	)


def job_schedule_query(user: str | None = None) -> str:
	return "" if is_manager(user) else "1=0"


def metrics_rollup_query(user: str | None = None) -> str:
	return "" if is_manager(user) else "1=0"


def can_read_doc(doctype: str, name: str, user: str | None = None) -> bool:
	"""Whether ``user`` may read the row ``name`` of ``doctype`` (False when there is none)."""
	if not name or not isinstance(name, str):
		return False
	if doctype in CHILD_PARENTS:
		row = frappe.db.get_value(doctype, name, ["parent", "parenttype"], as_dict=True)
		if not row or row.parenttype != CHILD_PARENTS[doctype]:
			return False
		return can_read_doc(row.parenttype, row.parent, user)
	if doctype == "Organization":
		exists = frappe.db.exists("Organization", name)
		return bool(exists) and (is_manager(user) or name in user_organizations(user))
	if doctype in ("Background Job", "Job Execution Log"):
		organization = frappe.db.get_value(doctype, name, "organization")
		return organization is not None and can_read_job(organization, user)
	return bool(frappe.db.exists(doctype, name)) and frappe.has_permission(doctype, "read", name, user=user)


def can_read_row(doc, user: str | None = None) -> bool:
	"""Whether ``user`` may read this loaded row of a tenant doctype."""
	if is_manager(user):
		return True
	if doc.doctype == "Organization":
		return doc.name in user_organizations(user)
	if doc.doctype in ("Background Job", "Job Execution Log"):
		return doc.organization in user_organizations(user)
	if doc.doctype in CHILD_PARENTS:
		return can_read_doc(doc.parenttype, doc.parent, user)
	return frappe.has_permission(doc.doctype, "read", user=user)


def _row_permission(doc, ptype: str | None, user: str | None) -> bool:
	return is_manager(user) or ((ptype or "read") in READ_PTYPES and can_read_row(doc, user))


def has_job_permission(doc, ptype: str | None = None, user: str | None = None, debug: bool = False) -> bool:
	return _row_permission(doc, ptype, user)


def has_organization_permission(
	doc, ptype: str | None = None, user: str | None = None, debug: bool = False
) -> bool:
	return _row_permission(doc, ptype, user)


def has_child_row_permission(
	doc, ptype: str | None = None, user: str | None = None, debug: bool = False
) -> bool:
	return _row_permission(doc, ptype, user)
