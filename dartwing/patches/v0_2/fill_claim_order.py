"""Jobs queued before ``claim_order`` existed get their key (``priority.claim_key``), computed in SQL
from ``queued_at`` (site time) with the site's present offset from UTC."""

import frappe

from dartwing.dartwing_core.background_jobs import clock
from dartwing.dartwing_core.background_jobs.priority import PRIORITY_SQL
from dartwing.dartwing_core.background_jobs.settings import get_settings


def execute():
	offset = round((clock.utc_now() - clock.site_now()).total_seconds())
	frappe.db.sql(
		f"""UPDATE `tabBackground Job`
		SET claim_order = TIMESTAMPDIFF(MICROSECOND, '1970-01-01', queued_at) / 1000000 + %(offset)s
			- {PRIORITY_SQL} * %(aging)s
		WHERE status = 'Queued' AND queued_at IS NOT NULL""",
		{"offset": offset, "aging": max(get_settings().aging_seconds, 1)},
	)
