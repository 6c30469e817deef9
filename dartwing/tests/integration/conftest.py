"""Tier 2: tests against a real site, real MariaDB, Redis and RQ workers.

Run from the bench's ``sites`` folder with the bench's Python, naming the site::

	cd /opt/frappe-bench/sites && DARTWING_SITE=test_site ../env/bin/python -m pytest ../apps/dartwing/dartwing/tests/integration

(``scripts/test.sh`` does this on a fresh test site.) Every test commits what workers must see
and cleans up the organizations, users and job types it made.
"""

import os

import frappe
import pytest

from dartwing.tests.integration import helpers


def pytest_configure(config):
	config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")
	helpers.connect_test_site()


def pytest_unconfigure(config):
	if getattr(frappe.local, "site", None):
		frappe.destroy()


@pytest.fixture(autouse=True)
def _fresh_transaction():
	frappe.set_user("Administrator")
	frappe.db.rollback()
	helpers.drain_queues()
	yield
	frappe.db.rollback()
	frappe.set_user("Administrator")


@pytest.fixture
def org():
	"""An Active organization whose only member is a fresh job user."""
	organization, user = helpers.make_org_with_user()
	yield frappe._dict(name=organization, user=user)
	helpers.cleanup_org(organization)


@pytest.fixture
def job_type_factory():
	made = []

	def make(**values):
		name = helpers.make_job_type(**values)
		made.append(name)
		return name

	yield make
	for name in made:
		helpers.delete_job_type(name)


@pytest.fixture(scope="session")
def live():
	"""A web server for this site and a Socket.IO server (see ``live_bench``), for HTTP tests."""
	from dartwing.tests.integration.live_bench import LiveSite

	site = LiveSite(frappe.local.site).start()
	yield site
	site.stop()
