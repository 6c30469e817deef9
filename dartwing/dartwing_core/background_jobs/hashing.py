"""Parameter canonicalisation, the dedup hash and concurrency keys.

Contract:
- ``canonical_json(value)`` is the same string for equal JSON values whatever the key order.
- ``parameters_hash(job_type, organization, parameters)`` is a sha256 hex digest over the job type,
  the organization and the canonical parameters: the dedup identity of a submission.
- ``render_concurrency_key(template, values)`` fills ``{placeholders}`` from the parameters and
  the submission (``owner``, ``organization``, ``job_type``); a missing placeholder is an error.

This module imports nothing from Frappe.
"""

import hashlib
import json
import string
from collections.abc import Mapping
from typing import Any


def canonical_json(value: Any) -> str:
	return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parameters_hash(job_type: str, organization: str, parameters: Mapping[str, Any] | None) -> str:
	payload = "\x1f".join((job_type, organization, canonical_json(parameters or {})))
	return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class MissingKeyPlaceholder(KeyError):
	pass


def template_placeholders(template: str) -> list[str]:
	return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def render_concurrency_key(template: str | None, values: Mapping[str, Any]) -> str | None:
	if not template or not template.strip():
		return None
	rendered = {}
	for name in template_placeholders(template):
		if name not in values or values[name] in (None, ""):
			raise MissingKeyPlaceholder(name)
		rendered[name] = values[name] if isinstance(values[name], str) else canonical_json(values[name])
	return template.format(**rendered)
