"""Frappe's generic endpoints, held to the same tenant isolation as Dartwing's own API.

Contract: for the doctypes in ``permissions.TENANT_DOCTYPES`` every generic read path answers
only with rows the caller may read (``permissions``' query conditions), and a row the caller may
not read answers exactly like a missing one. Most of Frappe's endpoints already go through
``frappe.get_list`` and the permission hooks; these do not, and are replaced for tenant doctypes
(``override_whitelisted_methods`` / ``standard_queries`` in hooks.py), other doctypes keep
Frappe's own behaviour:

- link search (``search_link`` / ``search_widget``, also with ``ignore_user_permissions=1``, which
  makes Frappe skip query conditions): ``search`` always applies them and returns only the name
  and title columns, whatever ``searchfield`` or ``filter_fields`` ask for;
- ``frappe.client.get_count``, which counts with no permission check at all in v15;
- ``frappe.desk.listview.get_group_by_count`` for ``assigned_to``, which counts assignments of
  every row matching the filters;
- ``frappe.client.validate_link``, which says whether any name exists;
- ``frappe.desk.doctype.tag.tag.get_tagged_docs``, which lists tagged names of every row;
- ``frappe.desk.like.toggle_like``, which adds a "liked" comment to any row, readable or not.

Child tables (Organization Member, Background Job Dependency) never appear in link search.
Realtime ``list_update`` broadcasts are handled by the controllers (``TenantDocument``).
"""

import frappe
from frappe import _
from frappe.client import get_count as frappe_get_count
from frappe.client import validate_link as frappe_validate_link
from frappe.desk.doctype.tag.tag import get_tagged_docs as frappe_get_tagged_docs
from frappe.desk.like import toggle_like as frappe_toggle_like
from frappe.desk.listview import get_group_by_count as frappe_get_group_by_count
from frappe.model.document import Document
from frappe.utils import cint, escape_html

from dartwing.dartwing_core.background_jobs import stored_text
from dartwing.dartwing_core.background_jobs.permissions import (
	CHILD_PARENTS,
	TENANT_DOCTYPES,
	can_read_doc,
	can_read_row,
	is_manager,
)

MAX_SEARCH_RESULTS = 50


def _is_tenant_doctype(doctype) -> bool:
	return isinstance(doctype, str) and doctype in TENANT_DOCTYPES


def _scoped_list(doctype: str, **kwargs) -> list:
	"""``frappe.get_list`` with permissions applied; child tables read through their parent."""
	if doctype in CHILD_PARENTS:
		kwargs["parent_doctype"] = CHILD_PARENTS[doctype]
	return frappe.get_list(doctype, **kwargs)


@frappe.whitelist()
def search(
	doctype: str,
	txt: str,
	searchfield: str | None = None,
	start: int = 0,
	page_len: int = 10,
	filters=None,
	as_dict: bool = False,
	reference_doctype: str | None = None,
	**kwargs,
):
	"""Link search for tenant doctypes: the caller's rows only, name and title columns only."""
	if not _is_tenant_doctype(doctype) or doctype in CHILD_PARENTS:
		return []
	meta = frappe.get_meta(doctype)
	columns = ["name"]
	for fieldname in [meta.title_field, *(meta.get_search_fields() if meta.search_fields else [])]:
		if fieldname and fieldname not in columns and meta.has_field(fieldname):
			columns.append(fieldname)
	txt = (txt or "").replace("%", "").strip()
	or_filters = [[doctype, column, "like", f"%{txt}%"] for column in columns] if txt else None
	rows = _scoped_list(
		doctype,
		filters=frappe.parse_json(filters) if isinstance(filters, str) else filters,
		or_filters=or_filters,
		fields=columns,
		limit_start=max(cint(start), 0),
		limit_page_length=min(max(cint(page_len), 1), MAX_SEARCH_RESULTS),
		order_by=f"`tab{doctype}`.`modified` DESC",
		as_list=not cint(as_dict),
		reference_doctype=reference_doctype,
	)
	return rows


@frappe.whitelist()
def get_count(doctype, filters=None, debug=False, cache=False):
	if not _is_tenant_doctype(doctype):
		return frappe_get_count(doctype, filters=filters, debug=debug, cache=cache)
	from frappe.client import get_safe_filters

	rows = _scoped_list(doctype, filters=get_safe_filters(filters), fields=["count(*) AS total"])
	return cint(rows[0].total) if rows else 0


@frappe.whitelist()
def get_group_by_count(doctype: str, current_filters: str, field: str) -> list[dict]:
	# Managers read every row: Frappe's own count is theirs, without the cap below.
	if not (_is_tenant_doctype(doctype) and field == "assigned_to") or is_manager():
		return frappe_get_group_by_count(doctype, current_filters, field)
	readable = _scoped_list(doctype, filters=frappe.parse_json(current_filters), pluck="name", limit=10_000)
	if not readable:
		return []
	return frappe.db.sql(
		"""SELECT todo.allocated_to AS name, COUNT(*) AS count
		FROM `tabToDo` todo JOIN `tabUser` user ON user.name = todo.allocated_to
		WHERE todo.status != 'Cancelled' AND user.user_type = 'System User'
			AND todo.reference_type = %(doctype)s AND todo.reference_name IN %(names)s
		GROUP BY todo.allocated_to ORDER BY count DESC LIMIT 50""",
		{"doctype": doctype, "names": tuple(readable)},
		as_dict=True,
	)


@frappe.whitelist()
def validate_link(doctype: str, docname: str, fields=None):
	if not _is_tenant_doctype(doctype) or not isinstance(docname, str):
		return frappe_validate_link(doctype, docname, fields)
	if not can_read_doc(doctype, docname):
		return frappe._dict()
	return frappe_validate_link(doctype, docname, fields)


@frappe.whitelist()
def get_tagged_docs(doctype, tag):
	if not _is_tenant_doctype(doctype):
		return frappe_get_tagged_docs(doctype, tag)
	return _scoped_list(doctype, filters={"_user_tags": ["like", tag]}, fields=["name"], as_list=True)


@frappe.whitelist()
def toggle_like(doctype, name, add=False):
	if _is_tenant_doctype(doctype) and not can_read_doc(doctype, name):
		frappe.throw(_("{0} {1} not found").format(_(doctype), name), frappe.DoesNotExistError)
	return frappe_toggle_like(doctype, name, add)


class TenantDocument(Document):
	"""A document of tenant data, seen through Frappe's generic endpoints.

	- Realtime: Frappe broadcasts ``list_update`` (name and the editing user) to the doctype's
	  room, which every user with a role on the doctype may join, whatever rows they can read.
	  Only ``doc_update`` is sent, to the document's room, which Frappe's Socket.IO server lets a
	  user join only after ``has_permission`` on that very document.
	- Existence: in a web request, a row the session user may not read (``permissions.can_read_row``)
	  fails to load with Frappe's own "not found" (HTTP 404), so form load, ``/api/resource``,
	  ``frappe.client.get``, print and every other load by name answer for someone else's row
	  exactly as for a missing one (Frappe would answer 403, telling that it exists).
	- Print: the engine's stored text (``stored_text``) is kept as written; print formats insert
	  field values as HTML, so ``before_print`` escapes it on the printed copy.
	"""

	def load_from_db(self):
		super().load_from_db()
		if getattr(frappe.local, "request", None) and not can_read_row(self):
			frappe.throw(_("{0} {1} not found").format(_(self.doctype), self.name), frappe.DoesNotExistError)

	def before_print(self, settings=None):
		"""Print formats insert field values as HTML: the printed copy carries stored text escaped."""
		for field in stored_text.STORED_TEXT_FIELDS.get(self.doctype, ()):
			if isinstance(value := self.get(field), str):
				self.set(field, escape_html(value))

	def notify_update(self):
		if frappe.flags.in_patch:
			return
		frappe.publish_realtime(
			"doc_update",
			{"modified": self.modified, "doctype": self.doctype, "name": self.name},
			doctype=self.doctype,
			docname=self.name,
			after_commit=True,
		)
