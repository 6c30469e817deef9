# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document
from frappe.utils.background_jobs import get_queues_timeout

from dartwing.dartwing_core.background_jobs import backoff, hashing, method_jobs, registry
from dartwing.dartwing_core.background_jobs.settings import clear_engine_cache


class JobType(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		backoff_base_seconds: DF.Int
		backoff_cap_seconds: DF.Int
		backoff_schedule: DF.Data | None
		backoff_strategy: DF.Literal["Exponential", "Fixed", "Schedule"]
		concurrency_key_template: DF.Data | None
		concurrency_limit: DF.Int
		declared_by_code: DF.SmallText | None
		dedup_window_seconds: DF.Int
		description: DF.SmallText | None
		enabled: DF.Check
		handler: DF.Data | None
		job_type_name: DF.Data
		max_retries: DF.Int
		max_recoveries: DF.Int
		max_running_per_organization: DF.Int
		method: DF.Data | None
		method_signature: DF.Data | None
		paused: DF.Check
		precondition: DF.Data | None
		precondition_timeout_seconds: DF.Float
		priority: DF.Literal["Low", "Normal", "High", "Critical"]
		queue: DF.Data
		rate_limit_count: DF.Int
		rate_limit_window_seconds: DF.Int
		required_role: DF.Link | None
		retention_days: DF.Int
		shutdown_grace_seconds: DF.Float
		timeout_seconds: DF.Int
		title: DF.Data
		unknown_errors: DF.Literal["Transient", "Permanent"]

	# end: auto-generated types
	def validate(self):
		method_jobs.check_method_change(self)
		if self.method and self.handler:
			frappe.throw(_("A job type runs a registered handler or a method, not both"))
		registry.validate_job_type(self)
		registry.validate_precondition_key(self.precondition)
		if self.queue not in get_queues_timeout():
			frappe.throw(
				_("Queue {0} is not a queue of this bench; use one of {1}").format(
					frappe.bold(self.queue), ", ".join(get_queues_timeout())
				)
			)
		try:
			backoff.BackoffPolicy(
				strategy=self.backoff_strategy or backoff.EXPONENTIAL,
				base=self.backoff_base_seconds or 0,
				cap=self.backoff_cap_seconds or 0,
				schedule=backoff.parse_schedule(self.backoff_schedule),
			)
		except ValueError as exc:
			frappe.throw(_("Backoff: {0}").format(exc))
		if self.concurrency_key_template:
			try:
				hashing.template_placeholders(self.concurrency_key_template)
			except ValueError as exc:
				frappe.throw(_("Concurrency key template: {0}").format(exc))

	def on_update(self):
		clear_engine_cache()

	def on_trash(self):
		if frappe.db.exists("Background Job", {"job_type": self.name}):
			frappe.throw(
				_("Job type {0} has jobs; disable it instead").format(self.name), frappe.LinkExistsError
			)
		clear_engine_cache()
