// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

frappe.query_reports["Job Type Health"] = {
	filters: [
		{
			fieldname: "from_date",
			label: __("From Date"),
			fieldtype: "Date",
			default: frappe.datetime.add_days(frappe.datetime.get_today(), -7),
			reqd: 1,
		},
		{
			fieldname: "to_date",
			label: __("To Date"),
			fieldtype: "Date",
			default: frappe.datetime.get_today(),
			reqd: 1,
		},
		{
			fieldname: "organization",
			label: __("Organization"),
			fieldtype: "Link",
			options: "Organization",
		},
		{
			fieldname: "job_type",
			label: __("Job Type"),
			fieldtype: "Link",
			options: "Job Type",
		},
	],

	formatter(value, row, column, data, default_formatter) {
		if (column.fieldname === "last_error") {
			// A job's error message, kept as written: text, never markup.
			return dartwing.jobs.text(value);
		}
		value = default_formatter(value, row, column, data);
		if (column.fieldname === "failure_rate" && data && flt(data.failure_rate) > 0) {
			value = `<span class="text-danger">${value}</span>`;
		}
		return value;
	},
};
