"""Sites installed before the reaper read Queued jobs from a cursor get its ``(status, name)``
index (``on_doctype_update`` adds only the indexes a site lacks)."""

from dartwing.dartwing_core.doctype.background_job.background_job import on_doctype_update


def execute():
	on_doctype_update()
