// Dartwing Desk helpers, loaded on every Desk page (hooks.py: app_include_js).
// - dartwing.jobs: status colours, the "Submit Job" dialog and a progress bar shared by the
//   Background Job list and form.
// - Any document that is the reference (reference_doctype / reference_name) of background jobs
//   lists them in a "Background Jobs" section of its form. Which jobs a user may see is decided
//   by dartwing.dartwing_core.api.desk.get_reference_jobs.

frappe.provide("dartwing.jobs");

const API = "dartwing.dartwing_core.api.jobs";
const DESK_API = "dartwing.dartwing_core.api.desk";

Object.assign(dartwing.jobs, {
	STATUS_COLORS: {
		Pending: "gray",
		Queued: "blue",
		Running: "orange",
		Retrying: "yellow",
		Completed: "green",
		Failed: "red",
		"Timed Out": "red",
		"Dead Letter": "red",
		Canceled: "darkgrey",
	},

	ACTIVE: ["Pending", "Queued", "Running", "Retrying"],

	color(status) {
		return this.STATUS_COLORS[status] || "gray";
	},

	indicator(status) {
		return [__(status), this.color(status), `status,=,${status}`];
	},

	indicator_pill(status) {
		const label = frappe.utils.escape_html(__(status || ""));
		return `<span class="indicator-pill ${this.color(status)}">${label}</span>`;
	},

	// Free text the engine stores (progress and error messages...) is kept as written
	// (stored_text.py): escape it wherever it goes into HTML.
	text(value) {
		return value == null ? "" : frappe.utils.escape_html(String(value));
	},

	is_manager() {
		return !!(frappe.boot.dartwing && frappe.boot.dartwing.is_job_manager);
	},

	// A Bootstrap progress bar; data-percent carries the number shown.
	progress_html(percent, message, { small = false } = {}) {
		const value = Math.max(0, Math.min(100, flt(percent)));
		const text = `${format_number(value, null, 0)}%`;
		return `<div class="dartwing-progress" data-percent="${value}">
			<div class="progress" style="height: ${small ? 6 : 10}px; margin: ${small ? "6px 0 0" : "4px 0"};">
				<div class="progress-bar" role="progressbar" aria-valuenow="${value}"
					aria-valuemin="0" aria-valuemax="100" style="width: ${value}%;"></div>
			</div>
			<div class="dartwing-progress-text text-muted small">
				<span class="dartwing-progress-percent">${text}</span>
				<span class="dartwing-progress-message">${
					message ? " · " + this.text(message) : ""
				}</span>
			</div>
		</div>`;
	},

	update_progress($wrapper, percent, message) {
		const value = Math.max(0, Math.min(100, flt(percent)));
		const $progress = $wrapper.find(".dartwing-progress");
		$progress.attr("data-percent", value);
		$progress.find(".progress-bar").css("width", `${value}%`).attr("aria-valuenow", value);
		$progress.find(".dartwing-progress-percent").text(`${format_number(value, null, 0)}%`);
		if (message !== undefined) {
			$progress.find(".dartwing-progress-message").html(message ? ` · ${this.text(message)}` : "");
		}
	},

	submit_dialog(defaults = {}) {
		const dialog = new frappe.ui.Dialog({
			title: __("Submit Job"),
			fields: [
				{
					fieldname: "job_type",
					fieldtype: "Link",
					options: "Job Type",
					label: __("Job Type"),
					reqd: 1,
					default: defaults.job_type,
					get_query: () => ({ filters: { enabled: 1 } }),
				},
				{
					fieldname: "organization",
					fieldtype: "Link",
					options: "Organization",
					label: __("Organization"),
					default: defaults.organization,
					description: __("Leave empty if you belong to one organization only."),
				},
				{
					fieldname: "priority",
					fieldtype: "Select",
					options: ["", "Low", "Normal", "High", "Critical"].join("\n"),
					label: __("Priority"),
					default: defaults.priority,
					description: __("Empty: the job type's default."),
				},
				{ fieldtype: "Section Break" },
				{
					fieldname: "parameters",
					fieldtype: "Code",
					options: "JSON",
					label: __("Parameters (JSON)"),
					default: defaults.parameters || "{}",
				},
				{
					fieldname: "reference_section",
					fieldtype: "Section Break",
					label: __("Reference"),
					collapsible: 1,
				},
				{
					fieldname: "reference_doctype",
					fieldtype: "Link",
					options: "DocType",
					label: __("Reference Document Type"),
					default: defaults.reference_doctype,
				},
				{
					fieldname: "reference_name",
					fieldtype: "Dynamic Link",
					options: "reference_doctype",
					label: __("Reference Name"),
					default: defaults.reference_name,
				},
			],
			primary_action_label: __("Submit"),
			primary_action: (values) => {
				let parameters = {};
				try {
					parameters = values.parameters ? JSON.parse(values.parameters) : {};
				} catch (e) {
					frappe.msgprint(
						__("Parameters must be valid JSON: {0}", [frappe.utils.escape_html(e.message)])
					);
					return;
				}
				dialog.disable_primary_action();
				frappe
					.xcall(`${API}.submit_job`, {
						job_type: values.job_type,
						parameters: JSON.stringify(parameters),
						organization: values.organization || null,
						priority: values.priority || null,
						reference_doctype: values.reference_doctype || null,
						reference_name: values.reference_name || null,
					})
					.then((r) => {
						dialog.hide();
						frappe.show_alert({
							message: r.deduplicated
								? __("Job {0} is already running for these parameters", [r.job_id])
								: __("Job {0} submitted", [r.job_id]),
							indicator: "green",
						});
						frappe.set_route("Form", "Background Job", r.job_id);
					})
					.finally(() => dialog.enable_primary_action());
			},
		});
		dialog.show();
		if (!defaults.organization) {
			// Fill in the organization when the user can see exactly one.
			frappe.db.get_list("Organization", { limit: 2, pluck: "name" }).then((names) => {
				if (names.length === 1 && !dialog.get_value("organization")) {
					dialog.set_value("organization", names[0]);
				}
			});
		}
		return dialog;
	},
});

// ---------------------------------------------------------------------------------------------
// Stored text: free text the engine stores (error and progress messages, log messages, a
// schedule's last outcome...) is kept as written, never as HTML (stored_text.py). Frappe's form,
// list and report view insert Data and Small Text values as HTML, so each of these fields gets an
// escaping formatter: the custom formatter Frappe's Data formatter applies
// (frappe.meta.docfield_map[doctype][fieldname].formatter), which also serves frappe.format calls
// made with the field itself (report view, prints of lists and reports). install(doctype) is
// called by the doctype's list script, which Frappe runs each time it loads the doctype's meta,
// before any view of it renders. The fields come from the boot (api/desk.py: boot_session).

dartwing.stored_text = {
	fields(doctype) {
		const fields = (frappe.boot.dartwing && frappe.boot.dartwing.stored_text_fields) || {};
		return fields[doctype] || [];
	},

	format(value) {
		return dartwing.jobs.text(value).replace(/\n/g, "<br>");
	},

	install(doctype) {
		const docfields = frappe.meta.docfield_map[doctype] || {};
		for (const fieldname of this.fields(doctype)) {
			if (docfields[fieldname]) {
				docfields[fieldname].formatter = (value) => this.format(value);
			}
		}
	},
};

// ---------------------------------------------------------------------------------------------
// Jobs shown on their reference document.

const NO_REFERENCE_SECTION = new Set([
	"Background Job",
	"Job Execution Log",
	"DocType",
	"Customize Form",
	"Workspace",
]);

dartwing.jobs.reference_section = {
	css_class: "dartwing-reference-jobs",

	applies_to(frm) {
		return (
			frm &&
			frm.doc &&
			!frm.is_new() &&
			!frm.meta.istable &&
			!frm.meta.issingle &&
			!NO_REFERENCE_SECTION.has(frm.doctype) &&
			frappe.session.user !== "Guest"
		);
	},

	async render(frm) {
		if (!this.applies_to(frm)) return;
		const doctype = frm.doctype;
		const name = frm.docname;
		const token = (frm.__dartwing_reference_token = (frm.__dartwing_reference_token || 0) + 1);
		const data = await frappe
			.call({
				method: `${DESK_API}.get_reference_jobs`,
				args: { reference_doctype: doctype, reference_name: name, limit: 10 },
				type: "GET",
			})
			.then((r) => r.message)
			.catch(() => null);
		if (!data) return;
		// The user may have moved on while we were waiting.
		if (
			token !== frm.__dartwing_reference_token ||
			frm.doctype !== doctype ||
			frm.docname !== name
		) {
			return;
		}
		frm.dashboard.parent.find(`.${this.css_class}`).remove();
		frm.__dartwing_reference_jobs = new Set((data.jobs || []).map((job) => job.name));
		if (!data.total) return;
		frm.dashboard.add_section(
			this.html(data, doctype, name),
			__("Background Jobs"),
			`custom ${this.css_class}`
		);
		frm.dashboard.show();
	},

	html(data, doctype, name) {
		const rows = data.jobs
			.map((job) => {
				const link = frappe.utils.get_form_link("Background Job", job.name);
				const progress =
					job.status === "Running"
						? dartwing.jobs.progress_html(job.progress_percent, job.progress_message, {
								small: true,
						  })
						: "";
				return `<tr data-job="${frappe.utils.escape_html(job.name)}">
					<td><a href="${link}">${frappe.utils.escape_html(job.name)}</a></td>
					<td>${frappe.utils.escape_html(job.job_type)}</td>
					<td>${dartwing.jobs.indicator_pill(job.status)}${progress}</td>
					<td class="text-muted">${frappe.datetime.comment_when(job.creation)}</td>
				</tr>`;
			})
			.join("");
		const list_route = `/app/background-job?reference_doctype=${encodeURIComponent(
			doctype
		)}&reference_name=${encodeURIComponent(name)}`;
		const summary = Object.entries(data.counts_by_status)
			.map(([status, count]) => `${dartwing.jobs.indicator_pill(status)} ${count}`)
			.join(" ");
		return `<div class="dartwing-reference-jobs-body" style="width: 100%;">
			<div class="mb-2">${summary}</div>
			<table class="table table-sm" style="margin-bottom: 4px;">
				<thead><tr>
					<th>${__("Job")}</th><th>${__("Job Type")}</th>
					<th>${__("Status")}</th><th>${__("Created")}</th>
				</tr></thead>
				<tbody>${rows}</tbody>
			</table>
			<a class="small" href="${list_route}">${__("View all jobs ({0})", [data.total])}</a>
		</div>`;
	},
};

$(document).on("form-refresh", (e, frm) => dartwing.jobs.reference_section.render(frm));

// Keep the section current while the user watches: events of the user's own jobs (and of jobs
// whose room the user joined) arrive here.
const refresh_reference_section = frappe.utils.debounce((frm) => {
	dartwing.jobs.reference_section.render(frm);
}, 500);

// frappe.realtime has a socket only once the Desk has started.
$(document).on("app_ready", () => {
	frappe.realtime.on("job_progress", (data) => {
		const frm = window.cur_frm;
		if (
			!frm ||
			!frm.__dartwing_reference_jobs ||
			!frm.__dartwing_reference_jobs.has(data.job_id)
		) {
			return;
		}
		const $row = frm.dashboard.parent.find(
			`.dartwing-reference-jobs tr[data-job="${CSS.escape(data.job_id)}"]`
		);
		if ($row.find(".dartwing-progress").length) {
			dartwing.jobs.update_progress($row, data.progress_percent, data.progress_message);
		}
	});

	frappe.realtime.on("job_status_changed", (data) => {
		const frm = window.cur_frm;
		if (
			frm &&
			frm.__dartwing_reference_jobs &&
			frm.__dartwing_reference_jobs.has(data.job_id)
		) {
			refresh_reference_section(frm);
		}
	});
});

// ---------------------------------------------------------------------------------------------
// Upkeep banner on the Background Jobs workspace (managers): when the upkeep runner last passed
// and whether Frappe's scheduler is active, with a warning when either is not.

dartwing.jobs.upkeep_banner = {
	css_class: "dartwing-upkeep-banner",
	workspace: "Background Jobs",
	refresh_every_ms: 15000,

	on_workspace() {
		const route = frappe.get_route() || [];
		return route[0] === "Workspaces" && route[route.length - 1] === this.workspace;
	},

	async refresh() {
		if (!this.on_workspace() || !(frappe.boot.dartwing && frappe.boot.dartwing.is_job_manager)) {
			$(`.${this.css_class}`).remove();
			return;
		}
		const state = await frappe
			.call({ method: `${DESK_API}.get_upkeep_status`, type: "GET" })
			.then((r) => r.message)
			.catch(() => null);
		$(`.${this.css_class}`).remove();
		if (!state || !this.on_workspace()) return;
		$("#page-Workspaces .layout-main-section").first().prepend(this.html(state));
	},

	html(state) {
		const age = state.upkeep_last_pass_age_seconds;
		const summary = __("Upkeep: last pass {0}. Frappe scheduler: {1}.", [
			age === null || age === undefined ? __("never") : __("{0} s ago", [Number(age).toFixed(1)]),
			state.scheduler_active ? __("active") : __("off"),
		]);
		const warnings = (state.warnings || [])
			.map((warning) => `<div>${frappe.utils.escape_html(warning)}</div>`)
			.join("");
		const level = warnings ? "alert-warning" : "alert-success";
		return `<div class="${this.css_class} alert ${level}" role="status"
			data-upkeep-alive="${state.upkeep_alive ? 1 : 0}"
			data-scheduler-active="${state.scheduler_active ? 1 : 0}">
			<div>${frappe.utils.escape_html(summary)}</div>${warnings}</div>`;
	},
};

$(document).on("app_ready", () => {
	const banner = dartwing.jobs.upkeep_banner;
	// The workspace renders after the route changes; look once it has had a moment.
	frappe.router.on("change", () => setTimeout(() => banner.refresh(), 300));
	setTimeout(() => banner.refresh(), 300);
	setInterval(() => banner.on_workspace() && banner.refresh(), banner.refresh_every_ms);
});
