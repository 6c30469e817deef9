# Copyright (c) 2026, Dartwing and contributors
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from dartwing.dartwing_core.background_jobs import priority
from dartwing.dartwing_core.background_jobs.settings import clear_engine_cache


class BackgroundJobSettings(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from dartwing.dartwing_core.doctype.paused_queue.paused_queue import PausedQueue
		from dartwing.dartwing_core.doctype.queue_organization_cap.queue_organization_cap import (
			QueueOrganizationCap,
		)

		aging_seconds: DF.Int
		api_rate_limit_per_minute: DF.Int
		cancel_grace_seconds: DF.Float
		fair_share: DF.Check
		heartbeat_interval_seconds: DF.Float
		max_parameters_kb: DF.Int
		max_recoveries: DF.Int
		organization_caps: DF.Table[QueueOrganizationCap]
		paused_queues: DF.Table[PausedQueue]
		retention_batch_size: DF.Int
		retention_days: DF.Int
		shutdown_grace_seconds: DF.Float
		stale_heartbeat_seconds: DF.Int

	# end: auto-generated types
	def validate(self):
		queues = [row.queue for row in self.organization_caps]
		repeated = sorted({queue for queue in queues if queues.count(queue) > 1})
		if repeated:
			frappe.throw(
				_("Each queue may have one cap per organization; repeated: {0}").format(", ".join(repeated))
			)

	def on_update(self):
		before = self.get_doc_before_save()
		if before and before.aging_seconds != self.aging_seconds:
			# Queued jobs' claim keys carry the aging; move them to the new one.
			frappe.db.sql(
				f"""UPDATE `tabBackground Job` SET {priority.rekey_sql(before.aging_seconds, self.aging_seconds)}
				WHERE status = 'Queued'"""
			)
		clear_engine_cache()
