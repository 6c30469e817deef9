// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// Status colours, live progress of running jobs, "Submit Job", and bulk Retry / Cancel.
// Shared helpers (colours, progress bar, submit dialog) are in dartwing/public/js/dartwing.bundle.js.

const DARTWING_JOBS_API = "dartwing.dartwing_core.api.jobs";

// Frappe runs this script whenever it loads the doctype: stored text shows escaped in every view.
dartwing.stored_text.install("Background Job");

frappe.listview_settings["Background Job"] = {
	add_fields: ["status", "progress_percent", "progress_message", "cancel_requested"],
	hide_name_column: false,

	get_indicator(doc) {
		return dartwing.jobs.indicator(doc.status);
	},

	formatters: {
		progress_percent(value, df, doc) {
			if (doc.status === "Running") {
				return `<div class="dartwing-list-progress" data-job="${frappe.utils.escape_html(
					doc.name
				)}" style="width: 100%;">${dartwing.jobs.progress_html(value, null, {
					small: true,
				})}</div>`;
			}
			return doc.status === "Completed" ? "100%" : "";
		},
	},

	onload(listview) {
		const submit = listview.page.add_inner_button(__("Submit Job"), () =>
			dartwing.jobs.submit_dialog()
		);
		submit.removeClass("btn-default").addClass("btn-primary btn-dartwing-submit-job");

		if (dartwing.jobs.is_manager()) {
			listview.page.add_actions_menu_item(
				__("Retry"),
				() => retry_selected(listview),
				false
			);
		}
		listview.page.add_actions_menu_item(__("Cancel"), () => cancel_selected(listview), false);

		setup_live_updates(listview);
	},

	// After each render: join the rooms of the active jobs shown, so their events reach this page
	// even when they belong to someone else (the server admits only users who may read the job).
	refresh(listview) {
		listview.__dartwing_rooms = listview.__dartwing_rooms || new Set();
		for (const doc of listview.data || []) {
			if (
				dartwing.jobs.ACTIVE.includes(doc.status) &&
				!listview.__dartwing_rooms.has(doc.name)
			) {
				listview.__dartwing_rooms.add(doc.name);
				frappe.realtime.emit("doc_subscribe", "Background Job", doc.name);
			}
		}
	},
};

function selected_names(listview) {
	return listview.get_checked_items().map((doc) => doc.name);
}

function retry_selected(listview) {
	const names = selected_names(listview);
	if (!names.length) return;
	frappe.confirm(__("Retry {0} job(s)?", [names.length]), () => {
		frappe
			.xcall(`${DARTWING_JOBS_API}.retry_jobs`, { job_ids: JSON.stringify(names) })
			.then((r) => {
				const failed = r.results.filter((result) => result.error);
				report_bulk_result(names.length - failed.length, failed, __("retried"));
				listview.clear_checked_items();
				listview.refresh();
			});
	});
}

function cancel_selected(listview) {
	const names = selected_names(listview);
	if (!names.length) return;
	frappe.confirm(__("Cancel {0} job(s)?", [names.length]), () => {
		frappe
			.xcall("dartwing.dartwing_core.api.desk.cancel_jobs", {
				job_ids: JSON.stringify(names),
			})
			.then((r) => {
				const failed = r.results.filter((result) => result.error);
				report_bulk_result(names.length - failed.length, failed, __("canceled"));
				listview.clear_checked_items();
				listview.refresh();
			});
	});
}

function report_bulk_result(done, failed, verb) {
	if (!failed.length) {
		frappe.show_alert({ message: __("{0} job(s) {1}", [done, verb]), indicator: "green" });
		return;
	}
	const rows = failed
		.map(
			(f) =>
				`<li><b>${frappe.utils.escape_html(f.job_id)}</b>: ${frappe.utils.escape_html(
					f.error || ""
				)}</li>`
		)
		.join("");
	frappe.msgprint({
		title: __("{0} job(s) {1}, {2} skipped", [done, verb, failed.length]),
		message: `<ul>${rows}</ul>`,
		indicator: done ? "orange" : "red",
	});
}

// Progress of running rows moves in place; a status change refreshes the list (unless the user
// is selecting rows). Events arrive for the user's own jobs and for jobs whose room they joined.
function setup_live_updates(listview) {
	if (listview.__dartwing_live) return;
	listview.__dartwing_live = true;

	const refresh = frappe.utils.debounce(() => {
		const on_list = frappe.get_route_str() === listview.page_name;
		if (on_list && !listview.get_checked_items().length) {
			listview.last_args = null; // BaseList drops a refresh with the same arguments within 3 s
			listview.refresh();
		}
	}, 700);

	frappe.realtime.on("job_progress", (data) => {
		const $cell = listview.$result.find(
			`.dartwing-list-progress[data-job="${CSS.escape(data.job_id)}"]`
		);
		if ($cell.length) {
			dartwing.jobs.update_progress($cell, data.progress_percent);
		}
	});

	// Events come only for the user's own jobs and the rooms joined above, so refresh on each
	// (debounced): a job of the user's that is not shown yet may belong on this page.
	frappe.realtime.on("job_status_changed", () => refresh());
}
