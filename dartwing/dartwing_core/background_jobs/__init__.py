"""Dartwing's background job engine: one module per concept.

Pure policy modules (no Frappe import, tested by ``dartwing/tests/unit``):
``states``, ``backoff``, ``classification``, ``hashing``, ``errors``.

Modules that talk to the site: ``transitions`` (the only writer of a job's status),
``execution_log``, ``registry``, ``submit``, ``dispatch``, ``executor``, ``context``,
``side_channel``, ``realtime``, ``rate_limit``, ``permissions``, ``settings``, ``demo``.

Handlers import what they need from here::

        from dartwing.dartwing_core.background_jobs import HttpError, PermanentError, TransientError
"""

from dartwing.dartwing_core.background_jobs.errors import (
	HttpError,
	JobCanceled,
	JobTimeout,
	OutputReference,
	PermanentError,
	TransientError,
)

__all__ = ["HttpError", "JobCanceled", "JobTimeout", "OutputReference", "PermanentError", "TransientError"]
