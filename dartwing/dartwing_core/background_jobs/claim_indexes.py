"""The indexes the claim reads Queued jobs through, by name.

Contract: ``background_job.on_doctype_update`` creates them under these names and the claim
(``claiming``) and the turns (``turns``) force them by these names. This module imports nothing,
so the work horse's hot path does not load the Background Job controller (and with it Frappe's
document and permission machinery) just for two names.
"""

# The queue's best jobs: status, queue, claim_order, queued_at (Frappe's default name for it).
QUEUE_CLAIM_INDEX = "status_queue_claim_order_queued_at_index"
# An organization's best jobs in one line: status, queue, organization, priority, claim_order,
# queued_at.
ORGANIZATION_CLAIM_INDEX = "organization_claim_index"
