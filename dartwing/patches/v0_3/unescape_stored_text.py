"""Stored text reads as it was written: values the engine stored HTML-escaped (before text was
kept as written, and by the patch ``v0_2.escape_stored_text``) are turned back into their text.

Only values the old writer could have produced change (``stored_text.unescape_legacy``: no raw
``< > " '``, every ``&`` one of its five entities); text with no entity, or written since, is left
alone, so running the patch again changes nothing more. Rows are read in batches by name, only
those holding an ``&``, and each batch is committed on its own.
"""

import frappe

from dartwing.dartwing_core.background_jobs.stored_text import STORED_TEXT_FIELDS, unescape_legacy

BATCH = 2000


def execute():
	for doctype, fields in STORED_TEXT_FIELDS.items():
		unescape_table(doctype, fields)


def unescape_table(doctype: str, fields: dict[str, int | None]) -> int:
	"""Undo the old escaping in ``fields`` (field -> length) of ``doctype``; returns rows changed."""
	columns = ", ".join(f"`{field}`" for field in fields)
	holds_entity = " OR ".join(f"INSTR(`{field}`, '&') > 0" for field in fields)
	changed, last = 0, None
	while True:
		after = "" if last is None else "name > %(last)s AND"
		rows = frappe.db.sql(
			f"""SELECT name, {columns} FROM `tab{doctype}`
			WHERE {after} ({holds_entity}) ORDER BY name LIMIT {BATCH}""",
			{"last": last},
			as_dict=True,
		)
		if not rows:
			return changed
		for row in rows:
			text = {}
			for field, length in fields.items():
				original = unescape_legacy(row[field], length)
				if original is not None:
					text[field] = original
			if text:
				frappe.db.sql(
					f"""UPDATE `tab{doctype}` SET {", ".join(f"`{field}` = %({field})s" for field in text)}
					WHERE name = %(name)s""",
					{**text, "name": row.name},
				)
				changed += 1
		frappe.db.commit()
		last = rows[-1].name
