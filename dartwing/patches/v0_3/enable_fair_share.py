"""Sites from before organizations took turns get ``fair_share`` on (the default of new sites):
the field is new, so no operator has turned it off yet, and a save of the settings before this
would have stored it empty (off)."""

import frappe


def execute():
	frappe.db.set_single_value("Background Job Settings", "fair_share", 1)
