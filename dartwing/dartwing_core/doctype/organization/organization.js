// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// frappe.ui.form.on("Organization", {
// 	refresh(frm) {

// 	},
// });
