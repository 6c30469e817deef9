"""Dartwing's own upkeep, run as jobs of the engine itself (job types ``dartwing_retention`` and
``dartwing_queue_health``, scheduled in Dartwing's hooks).

Contract: ``retention_cleanup(ctx)`` deletes expired jobs within ``time_budget_seconds``
(parameter, default 240) and returns the counts; ``queue_health(ctx)`` returns the health signals,
which metrics read back from the latest completed run.
"""

from dartwing.dartwing_core.background_jobs import health, retention


def retention_cleanup(ctx):
	ctx.progress(0, "deleting expired jobs")
	return retention.purge_expired(time_budget_seconds=float(ctx.parameters.get("time_budget_seconds", 240)))


def queue_health(ctx):
	return health.check()
