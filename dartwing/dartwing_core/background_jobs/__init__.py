"""Dartwing's background job engine: one module per concept.

Pure policy modules (no Frappe import, tested by ``dartwing/tests/unit``):
``states``, ``backoff``, ``classification``, ``hashing``, ``handler_errors`` (what a handler
raises), ``metrics_math``.

Modules that talk to the site: ``transitions`` (the only writer of a job's status),
``execution_log`` (the audit trail rows), ``jobs_logger`` (the structured log file),
``api_errors`` (exceptions with their HTTP status), ``registry``, ``submit``, ``dispatch``,
``executor`` (the token's entry point) with ``claiming`` (and ``claim_indexes``), ``execution``
and ``interruption``, ``context``, ``side_channel``, ``realtime``, ``rate_limit``, ``permissions``,
``settings``, ``demo``; read models: ``job_views``, ``desk_views``, ``metrics``.

Handlers import what they need from here::

        from dartwing.dartwing_core.background_jobs import HttpError, PermanentError, TransientError
"""

from dartwing.dartwing_core.background_jobs.handler_errors import (
	HttpError,
	JobCanceled,
	JobTimeout,
	OutputReference,
	PermanentError,
	TransientError,
)

__all__ = ["HttpError", "JobCanceled", "JobTimeout", "OutputReference", "PermanentError", "TransientError"]
