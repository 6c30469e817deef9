"""Background Job loses Frappe's index on ``modified`` alone: ``(modified, creation)`` serves every
read of it, and each status move of a job updated both (``on_doctype_update`` drops it on new
sites)."""

from dartwing.dartwing_core.doctype.background_job.background_job import on_doctype_update


def execute():
	on_doctype_update()
