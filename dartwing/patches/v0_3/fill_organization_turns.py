"""Sites with Queued jobs from before organizations took turns get the claim's per-organization
index and one turn row per line with Queued work (``turns.repair``), so those jobs share the
queue fairly from the first claim."""

from dartwing.dartwing_core.background_jobs import turns
from dartwing.dartwing_core.doctype.background_job.background_job import on_doctype_update


def execute():
	on_doctype_update()
	turns.repair()
