"""Free text stored before ``stored_text`` existed is escaped the same way, so that no Desk view
runs markup a handler or an error put there. Only rows holding ``< > " '`` are touched."""

import frappe

from dartwing.dartwing_core.background_jobs.stored_text import DATA_LENGTH, PLAIN_TEXT_COLUMNS

COLUMNS = {
	"Background Job": PLAIN_TEXT_COLUMNS,
	"Job Execution Log": {"message": None, "worker": DATA_LENGTH},
	"Job Schedule": {"last_outcome": None},
}
ESCAPED = "REPLACE(REPLACE(REPLACE(REPLACE(REPLACE({0}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '\"', '&quot;'), \"'\", '&#x27;')"


def execute():
	for doctype, columns in COLUMNS.items():
		for column, length in columns.items():
			escaped = ESCAPED.format(f"`{column}`")
			if length:
				escaped = f"LEFT({escaped}, {length})"
			frappe.db.sql(
				f"""UPDATE `tab{doctype}` SET `{column}` = {escaped}
				WHERE `{column}` REGEXP '[<>\\"\\']'"""
			)
