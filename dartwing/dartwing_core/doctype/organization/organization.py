# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs import pausing
from dartwing.dartwing_core.background_jobs.generic_endpoints import TenantDocument
from dartwing.dartwing_core.background_jobs.settings import clear_engine_cache


class Organization(TenantDocument):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from dartwing.dartwing_core.doctype.organization_member.organization_member import OrganizationMember

		members: DF.Table[OrganizationMember]
		organization_name: DF.Data
		status: DF.Literal["Active", "Suspended"]

	# end: auto-generated types
	def validate(self):
		users = [row.user for row in self.members]
		duplicates = {user for user in users if users.count(user) > 1}
		if duplicates:
			frappe.throw(_("{0} is listed more than once").format(", ".join(sorted(duplicates))))

	def on_update(self):
		clear_engine_cache()
		before = self.get_doc_before_save()
		if before and before.status != self.status:
			if self.status == "Suspended":
				pausing.hold_organization(self.name)
			else:
				pausing.release_organization(self.name)

	def on_trash(self):
		if frappe.db.exists("Background Job", {"organization": self.name}):
			frappe.throw(
				_("Organization {0} has jobs; suspend it instead").format(self.name), frappe.LinkExistsError
			)
		clear_engine_cache()
