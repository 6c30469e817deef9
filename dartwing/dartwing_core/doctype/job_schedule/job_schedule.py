# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe
from frappe import _

from dartwing.dartwing_core.background_jobs import clock, cron, schedules, submit_input
from dartwing.dartwing_core.background_jobs.generic_endpoints import TenantDocument


class JobSchedule(TenantDocument):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		catch_up_limit: DF.Int
		cron_expression: DF.Data
		description: DF.SmallText | None
		enabled: DF.Check
		job_type: DF.Link
		last_job: DF.Link | None
		last_outcome: DF.SmallText | None
		last_run_at: DF.Datetime | None
		misfire_grace_seconds: DF.Int
		missed_run_policy: DF.Literal["Run Once", "Skip", "Catch Up"]
		next_run_at: DF.Datetime | None
		next_run_utc: DF.Datetime | None
		organization: DF.Link
		overlap_policy: DF.Literal["Skip If Running", "Allow"]
		parameters: DF.Code | None
		priority: DF.Literal["", "Low", "Normal", "High", "Critical"]
		run_as: DF.Link | None
		schedule_name: DF.Data
		source: DF.Literal["Desk", "Hooks"]
		time_zone: DF.Autocomplete
	# end: auto-generated types

	def onload(self):
		self.set_onload("time_zones", sorted(cron.available_zones()))

	def validate(self):
		schedules.check_run_as(self)
		self.cron_expression = (self.cron_expression or "").strip()
		self.time_zone = (self.time_zone or "").strip() or frappe.utils.get_system_timezone()
		try:
			cron.validate(self.cron_expression, self.time_zone)
		except ValueError as exc:
			frappe.throw(str(exc), title=_("Invalid schedule"))
		self.parameters = frappe.as_json(submit_input.parse_parameters(self.parameters), indent=None)
		if self.catch_up_limit is not None and self.catch_up_limit < 1:
			frappe.throw(_("Catch Up Limit must be at least 1"))
		if self.misfire_grace_seconds is not None and self.misfire_grace_seconds < 0:
			frappe.throw(_("On-Time Grace cannot be negative"))
		if self.enabled and (
			not self.next_run_utc
			or self.has_value_changed("cron_expression")
			or self.has_value_changed("time_zone")
			or self.has_value_changed("enabled")
		):
			# Runs missed while a schedule was off or differently timed are not owed.
			self.next_run_utc = schedules.initial_next_run(self)
			self.next_run_at = clock.utc_to_site(self.next_run_utc)
		if not self.enabled:
			self.next_run_at = self.next_run_utc = None
