"""Browser tests of the Desk: real headless Chromium (Playwright) against a running bench.

Run them with ``scripts/browser-tests.sh`` (see the README, "Desk"). By hand, from the bench's
``sites`` folder with the bench's Python::

	DARTWING_SITE=mysite DARTWING_URL=http://mysite:8000 ../env/bin/python -m pytest ../apps/dartwing/dartwing/tests/browser

The site must be served by a running bench (web, Socket.IO and at least one worker), allow tests
(``allow_tests: true`` in its site config) and have the app's assets built. The tests make their
own organization, users and job types, and delete them (with their jobs) at the end.

Environment: ``DARTWING_SITE`` (required), ``DARTWING_URL`` (default ``http://SITE:8000``),
``DARTWING_CHROMIUM`` (default: ``chromium`` on PATH), ``DARTWING_SCREENSHOTS`` (default
``docs/screenshots`` of this checkout), ``DARTWING_HEADED=1`` to watch the browser.
"""

import os
import shutil
from pathlib import Path

import frappe
import pytest

from dartwing.tests.browser import scenario as scenario_module
from dartwing.tests.integration.conftest import (  # the same site connection as the integration tests
	pytest_configure,
	pytest_unconfigure,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def base_url() -> str:
	return os.environ.get("DARTWING_URL") or f"http://{frappe.local.site}:8000"


@pytest.fixture(scope="session")
def screenshots() -> Path:
	folder = Path(os.environ.get("DARTWING_SCREENSHOTS") or REPO_ROOT / "docs" / "screenshots")
	folder.mkdir(parents=True, exist_ok=True)
	return folder


@pytest.fixture(scope="session")
def chromium():
	from playwright.sync_api import sync_playwright

	executable = os.environ.get("DARTWING_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
	with sync_playwright() as playwright:
		browser = playwright.chromium.launch(
			executable_path=executable,
			headless=os.environ.get("DARTWING_HEADED") != "1",
			args=["--no-sandbox", "--disable-dev-shm-usage"],
		)
		yield browser
		browser.close()


@pytest.fixture(scope="session")
def scenario():
	"""An organization with a job manager and a plain member, and job types that stay put."""
	made = scenario_module.Scenario.create()
	yield made
	made.cleanup()


def _desk_page(chromium, base_url, user):
	context = chromium.new_context(viewport={"width": 1440, "height": 1000})
	page = context.new_page()
	scenario_module.login(page, base_url, user)
	yield page
	context.close()


@pytest.fixture(scope="session")
def manager_page(chromium, base_url, scenario):
	"""A Desk session of the scenario's job manager."""
	yield from _desk_page(chromium, base_url, scenario.manager)


@pytest.fixture(scope="session")
def member_page(chromium, base_url, scenario):
	"""A Desk session of a plain member of the scenario's organization."""
	yield from _desk_page(chromium, base_url, scenario.member)
