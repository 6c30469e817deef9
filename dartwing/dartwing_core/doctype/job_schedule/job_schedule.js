// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

frappe.ui.form.on("Job Schedule", {
	onload(frm) {
		const zones = frm.doc.__onload && frm.doc.__onload.time_zones;
		if (zones) frm.set_df_property("time_zone", "options", zones);
	},
	refresh(frm) {
		if (frm.doc.last_job) {
			frm.add_custom_button(__("Last Job"), () =>
				frappe.set_route("Form", "Background Job", frm.doc.last_job)
			);
		}
		if (!frm.is_new()) {
			frm.add_custom_button(__("Runs"), () =>
				frappe.set_route("List", "Background Job", { job_schedule: frm.doc.name })
			);
		}
	},
});
