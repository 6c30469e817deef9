"""Who may see and touch which jobs: tenant isolation in one place.

Contract:
- Job managers (``Background Job Manager``, ``System Manager``, Administrator) see and manage
  every job.
- Everyone else sees the jobs, logs and organizations of the organizations they are members of,
  and nothing else; they may cancel their own jobs.
- The same rules back the Desk list, ``/api/resource``, reports, realtime rooms and the API
  (``permission_query_conditions`` / ``has_permission`` hooks).
"""

import frappe

MANAGER_ROLES = frozenset({"Background Job Manager", "System Manager"})
USER_ROLE = "Background Job User"
MANAGER_ROLE = "Background Job Manager"
READ_PTYPES = frozenset({"read", "select", "report", "export", "print", "email"})


def is_manager(user: str | None = None) -> bool:
	user = user or frappe.session.user
	return user == "Administrator" or bool(MANAGER_ROLES.intersection(frappe.get_roles(user)))


def user_organizations(user: str | None = None) -> list[str]:
	user = user or frappe.session.user
	if user == "Guest":
		return []
	return frappe.get_all(
		"Organization Member",
		filters={"user": user, "parenttype": "Organization"},
		pluck="parent",
		distinct=True,
		ignore_permissions=True,
	)


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


def background_job_query(user: str | None = None) -> str:
	return _organization_condition("`tabBackground Job`.`organization`", user)


def job_execution_log_query(user: str | None = None) -> str:
	return _organization_condition("`tabJob Execution Log`.`organization`", user)


def organization_query(user: str | None = None) -> str:
	return _organization_condition("`tabOrganization`.`name`", user)


def has_job_permission(doc, ptype: str | None = None, user: str | None = None, debug: bool = False) -> bool:
	if is_manager(user):
		return True
	return (ptype or "read") in READ_PTYPES and doc.organization in user_organizations(user)


def has_organization_permission(
	doc, ptype: str | None = None, user: str | None = None, debug: bool = False
) -> bool:
	if is_manager(user):
		return True
	return (ptype or "read") in READ_PTYPES and doc.name in user_organizations(user)
