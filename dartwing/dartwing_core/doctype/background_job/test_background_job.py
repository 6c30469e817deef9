# Copyright (c) 2026, Dartwing and Contributors
# See license.txt

# import frappe
from frappe.tests.utils import FrappeTestCase


class TestBackgroundJob(FrappeTestCase):
	pass
