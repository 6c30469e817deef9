"""Free text the engine stores, kept so that no Desk view can run it as markup.

Contract: ``plain(value)`` is how every free text that comes from handlers, parameters or errors
is stored (error type and message, progress message, output reference, concurrency key, worker,
log messages, a schedule's last outcome): ``& < > " '`` become HTML entities, so Desk's form,
list, report view, print view, reports and timeline, which insert such values as HTML, show
them as text. It is idempotent (text already stored this way is not escaped twice), so values
read back and written again stay the same. Frappe sanitizes its own documents' text on save
(``_sanitize_content``); these columns are written with SQL, so the engine does it here. API
callers read the same entities.

``PLAIN_TEXT_COLUMNS`` are the Background Job columns ``transitions`` passes through ``plain``,
with the length each holds.
JSON values (parameters, result, checkpoint) are kept as they are, in Code fields, which Desk
always shows escaped.

This module imports nothing from Frappe.
"""

import html

# Frappe's Data fields are varchar(140); Small Text has room for the error messages.
DATA_LENGTH = 140
PLAIN_TEXT_COLUMNS = {
	"error_type": DATA_LENGTH,
	"progress_message": DATA_LENGTH,
	"output_reference": DATA_LENGTH,
	"concurrency_key": DATA_LENGTH,
	"worker": DATA_LENGTH,
	"error_message": None,
}


def plain(value: str | None, limit: int | None = None) -> str | None:
	if value is None:
		return None
	text = html.escape(html.unescape(str(value)), quote=True)
	if limit is not None and len(text) > limit:
		text = text[:limit]
		# never leave half an entity at the cut
		cut = text.rfind("&")
		if cut != -1 and ";" not in text[cut:]:
			text = text[:cut]
	return text
