// Copyright (c) 2026, Dartwing and contributors
// For license information, please see license.txt

// The job form: a progress bar fed by realtime events (job_progress, job_status_changed), Cancel
// and Retry buttons when the server says this user may use them (BackgroundJob.onload sets
// can_cancel / can_retry), and the job's events in the timeline (additional_timeline_content).

const DARTWING_API = "dartwing.dartwing_core.api.jobs";

frappe.ui.form.on("Background Job", {
	setup(frm) {
		dartwing_job_form.listen(frm);
	},

	refresh(frm) {
		// Jobs change only through the engine and its API.
		frm.disable_save();
		dartwing_job_form.subscribe(frm);
		dartwing_job_form.render_progress(frm);
		dartwing_job_form.add_actions(frm);
	},
});

const dartwing_job_form = {
	PROGRESS_CLASS: "dartwing-job-progress",

	// One set of listeners per form object; Frappe reuses it for every job opened.
	listen(frm) {
		frappe.realtime.on("job_progress", (data) => {
			if (!frm.doc || data.job_id !== frm.doc.name) return;
			// Progress is sent while the handler's transaction is open: events may overtake one
			// another, so keep the newest.
			if (data.sent_at && frm.__dartwing_progress_sent_at > data.sent_at) return;
			frm.__dartwing_progress_sent_at = data.sent_at;
			frm.doc.progress_percent = data.progress_percent;
			frm.doc.progress_message = data.progress_message;
			frm.refresh_field("progress_percent");
			frm.refresh_field("progress_message");
			this.render_progress(frm);
		});

		const reload = frappe.utils.debounce(() => {
			if (!frm.is_dirty()) frm.reload_doc();
		}, 300);
		frappe.realtime.on("job_status_changed", (data) => {
			if (!frm.doc || data.job_id !== frm.doc.name) return;
			frm.__dartwing_progress_sent_at = 0;
			if (frm.doc.status !== data.status) {
				frm.page.set_indicator(__(data.status), dartwing.jobs.color(data.status));
			}
			reload();
		});
	},

	// The owner gets events in their user room; anyone else who can read the job joins its room.
	// Frappe throttles doc_subscribe to one call a second, so try again once if it was dropped.
	subscribe(frm) {
		const doctype = frm.doctype;
		const name = frm.docname;
		const join = () => {
			if (frm.docname === name) frappe.realtime.doc_subscribe(doctype, name);
		};
		join();
		setTimeout(() => {
			if (
				!frappe.realtime.open_docs ||
				!frappe.realtime.open_docs.has(`${doctype}:${name}`)
			) {
				join();
			}
		}, 1100);
	},

	render_progress(frm) {
		const doc = frm.doc;
		let $section = frm.dashboard.parent.find(`.${this.PROGRESS_CLASS}`);
		const show =
			dartwing.jobs.ACTIVE.includes(doc.status) ||
			doc.status === "Completed" ||
			flt(doc.progress_percent) > 0;
		if (!show) {
			$section.remove();
			return;
		}
		const percent = doc.status === "Completed" ? 100 : doc.progress_percent;
		if (!$section.length) {
			frm.dashboard.add_section(
				dartwing.jobs.progress_html(percent, doc.progress_message),
				__("Progress"),
				`custom ${this.PROGRESS_CLASS}`
			);
			frm.dashboard.show();
			$section = frm.dashboard.parent.find(`.${this.PROGRESS_CLASS}`);
		} else {
			dartwing.jobs.update_progress($section, percent, doc.progress_message);
		}
		$section.attr("data-status", doc.status);
		$section
			.find(".progress-bar")
			.toggleClass("progress-bar-striped progress-bar-animated", doc.status === "Running")
			.toggleClass("bg-success", doc.status === "Completed")
			.toggleClass("bg-danger", ["Failed", "Timed Out", "Dead Letter"].includes(doc.status))
			.toggleClass("bg-secondary", doc.status === "Canceled");
	},

	add_actions(frm) {
		const onload = frm.doc.__onload || {};
		if (onload.can_cancel) {
			const button = frm.add_custom_button(__("Cancel"), () => this.cancel(frm));
			button.addClass("btn-danger btn-dartwing-cancel");
		}
		if (onload.can_retry) {
			const button = frm.add_custom_button(__("Retry"), () => this.retry(frm));
			button.addClass("btn-primary btn-dartwing-retry");
		}
	},

	cancel(frm) {
		frappe.confirm(__("Cancel job {0}?", [frm.doc.name]), () => {
			frappe.xcall(`${DARTWING_API}.cancel_job`, { job_id: frm.doc.name }).then((r) => {
				frappe.show_alert({
					message:
						r.status === "Canceled"
							? __("Job {0} canceled", [r.job_id])
							: __("Cancel requested; the job stops at its next step"),
					indicator: "orange",
				});
				frm.reload_doc();
			});
		});
	},

	retry(frm) {
		const dialog = new frappe.ui.Dialog({
			title: __("Retry {0}", [frm.doc.name]),
			fields: [
				{
					fieldname: "parameters",
					fieldtype: "Code",
					options: "JSON",
					label: __("Parameters (JSON)"),
					default: frm.doc.parameters || "{}",
					description: __("Edit to retry with other parameters."),
				},
			],
			primary_action_label: __("Retry"),
			primary_action: (values) => {
				let parameters = null;
				if (
					values.parameters &&
					values.parameters.trim() !== (frm.doc.parameters || "").trim()
				) {
					try {
						parameters = JSON.stringify(JSON.parse(values.parameters));
					} catch (e) {
						frappe.msgprint(
							__("Parameters must be valid JSON: {0}", [
								frappe.utils.escape_html(e.message),
							])
						);
						return;
					}
				}
				frappe
					.xcall(`${DARTWING_API}.retry_job`, { job_id: frm.doc.name, parameters })
					.then(() => {
						dialog.hide();
						frappe.show_alert({
							message: __("Job {0} queued again", [frm.doc.name]),
							indicator: "green",
						});
						frm.reload_doc();
					});
			},
		});
		dialog.show();
	},
};
