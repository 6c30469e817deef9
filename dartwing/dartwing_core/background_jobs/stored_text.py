"""Free text the engine stores: kept exactly as written; escaped where Desk renders HTML.

Contract: ``plain(value, limit)`` is how every free text that comes from handlers, parameters or
errors is stored (error type and message, progress message, output reference, concurrency key,
correlation id, worker, log messages, a schedule's last outcome): as text, as written, cut to the
column's length. The API and the CLI read it back unchanged (the Prometheus scrape carries only
job type, queue and status names). Nothing the engine stores is HTML, so every place that puts
such text into HTML escapes it there:
- Desk's form, list, report view and their prints: each field of ``STORED_TEXT_FIELDS`` gets an
  escaping formatter (``dartwing.stored_text`` in ``public/js/dartwing.bundle.js``, installed by
  each doctype's list script, which Frappe runs whenever the Desk loads the doctype; the fields
  come from the boot, ``api.desk.boot_session``);
- the print view: ``generic_endpoints.TenantDocument.before_print`` escapes them on the printed
  copy of the document;
- the job timeline (``api.desk.job_timeline``), the Job Type Health report's last error, the
  progress bars of the form, list and reference section (``dartwing.jobs.text``).
JSON values (parameters, result, checkpoint) are kept as they are, in Code fields, which Desk
always shows escaped.

``PLAIN_TEXT_COLUMNS`` are the Background Job columns ``transitions`` passes through ``plain``,
with the length each holds; ``STORED_TEXT_FIELDS`` every such field of every doctype.

``unescape_legacy(value)`` undoes what the engine wrote before text was kept as written
(``html.escape(html.unescape(text), quote=True)``, cut without leaving half an entity); for the
patch ``v0_3.unescape_stored_text``.

This module imports nothing from Frappe.
"""

import re

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
STORED_TEXT_FIELDS = {
	"Background Job": {**PLAIN_TEXT_COLUMNS, "correlation_id": DATA_LENGTH},
	"Job Execution Log": {"message": None, "worker": DATA_LENGTH},
	"Job Schedule": {"last_outcome": None},
}


def plain(value, limit: int | None = None) -> str | None:
	if value is None:
		return None
	text = str(value)
	return text[:limit] if limit is not None else text


# What html.escape(..., quote=True) writes, and nothing else.
_LEGACY_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'"}
_LEGACY_TOKEN = re.compile(r"&(?:amp|lt|gt|quot|#x27);|&")
# An entity cut short at the end of a full column (the first patch's SQL escaping could leave one).
_CUT_ENTITY = re.compile(r"&(?:a|am|amp|l|lt|g|gt|q|qu|quo|quot|#|#x|#x2|#x27)?$")


def unescape_legacy(value: str | None, limit: int | None = None) -> str | None:
	"""The text the old writer was given, for text it wrote into a column of ``limit`` characters;
	None for anything it could not have written (raw ``< > " '``, or an ``&`` that starts none of
	its five entities) and for text with no entity at all, which needs no change. A value exactly
	``limit`` long may end in an entity cut short (the first patch's SQL cut): that part goes."""
	if not value or "&" not in value or any(char in value for char in "<>\"'"):
		return None
	if limit is not None and len(value) == limit:
		value = _CUT_ENTITY.sub("", value)
	if "&" in _LEGACY_TOKEN.findall(value):
		return None
	return _LEGACY_TOKEN.sub(lambda match: _LEGACY_ENTITIES[match.group(0)], value)
