"""Frappe's CLI for one site, run as a child process (workers, ``serve``, ``dartwing`` commands).

Contract: ``frappe_cli(site, *args)`` is the argv of ``bench --site SITE ARGS...`` run with this
Python, so it works from the bench's ``sites`` folder without the bench CLI on PATH.
"""

import sys


def frappe_cli(site: str, *args: str) -> list[str]:
	return [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site, *args]
