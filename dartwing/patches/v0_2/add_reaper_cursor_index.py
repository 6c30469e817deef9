"""Sites installed before the reaper read Queued jobs from a cursor get its ``(status, name)``
index (``on_doctype_update`` adds only the indexes a site lacks) and lose ``(status, queue,
queued_at)``, which nothing reads any more (the claim's index holds ``queued_at`` too): a status
move keeps updating as many indexes as before."""

import frappe

from dartwing.dartwing_core.doctype.background_job.background_job import on_doctype_update

RETIRED_INDEX = "status_queue_queued_at_index"


def execute():
	on_doctype_update()
	if frappe.db.sql("SHOW INDEX FROM `tabBackground Job` WHERE Key_name = %s", RETIRED_INDEX):
		frappe.db.sql_ddl(f"ALTER TABLE `tabBackground Job` DROP INDEX `{RETIRED_INDEX}`")
