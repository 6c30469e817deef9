"""Sites installed before the metrics window indexes get them (``add_index`` skips existing ones)."""

from dartwing.dartwing_core.doctype.background_job.background_job import on_doctype_update


def execute():
	on_doctype_update()
