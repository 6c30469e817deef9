"""Organizations, the tenants: which one a job belongs to, and who belongs to which.

Contract:
- ``SYSTEM_ORGANIZATION`` (``Dartwing System``) holds Dartwing's own upkeep jobs and the runs of
  schedules that name no organization; ``ensure_system_organization()`` makes it when missing.
- ``user_organizations(user)``: the organizations ``user`` is a member of (none for Guest).
- ``obvious_organization()``: the organization to use when none is named: the Default
  Organization of Background Job Settings; else the site's only Active organization besides
  ``Dartwing System``; else ``Dartwing System`` when it is the only one; else None.
- ``resolve_organization(organization, user, privileged)``: the organization a submission runs
  in. A named one must exist, be Active and have ``user`` as a member unless ``privileged``
  (a manager, or server-side code); an organization that does not exist and one the caller is
  not in are refused alike ("not found"). With none named: the caller's only organization; for a
  privileged caller, else the obvious one.
"""

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs.api_errors import OrganizationSuspendedError
from dartwing.dartwing_core.background_jobs.settings import SETTINGS_DOCTYPE

SYSTEM_ORGANIZATION = "Dartwing System"


def ensure_system_organization() -> str:
	if not frappe.db.exists("Organization", SYSTEM_ORGANIZATION):
		frappe.get_doc(
			{"doctype": "Organization", "organization_name": SYSTEM_ORGANIZATION, "status": "Active"}
		).insert(ignore_permissions=True)
	return SYSTEM_ORGANIZATION


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


def obvious_organization() -> str | None:
	default = frappe.get_cached_doc(SETTINGS_DOCTYPE).get("default_organization")
	if default:
		return default
	active = frappe.get_all("Organization", filters={"status": "Active"}, pluck="name", limit=3)
	others = [name for name in active if name != SYSTEM_ORGANIZATION]
	if len(others) == 1:
		return others[0]
	if not others and active:
		return active[0]
	return None


def resolve_organization(organization: str | None, user: str, privileged: bool) -> str:
	if not organization:
		memberships = user_organizations(user)
		if len(memberships) == 1:
			return memberships[0]
		if privileged:
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
	if status is None or not (privileged or organization in user_organizations(user)):
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
