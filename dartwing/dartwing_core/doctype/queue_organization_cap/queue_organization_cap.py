# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class QueueOrganizationCap(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		max_running_per_organization: DF.Int
		parent: DF.Data
		parentfield: DF.Data
		parenttype: DF.Data
		queue: DF.Data
	# end: auto-generated types
	pass
