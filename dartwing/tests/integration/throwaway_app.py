"""A throwaway Frappe app for tests that do what a new user does with their own app.

``ThrowawayApp(name)`` writes ``apps/NAME/NAME/`` in the test site's bench (``__init__.py``,
``hooks.py`` with the app's metadata, ``modules.txt``, ``patches.txt``), puts it on the bench env's
path with a ``.pth`` file (what an editable install does), lists it in ``sites/apps.txt`` and
installs it on the site with ``bench install-app``. ``write(path, text)`` adds or replaces a file;
``hooks.py`` text is appended to the app's hooks. ``remove()`` uninstalls it and deletes every
trace, including the Job Types and schedules its functions got. ``bench(...)`` and
``execute(...)`` run the bench CLI for the site as child processes.
"""

import importlib
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig

import frappe

from dartwing.processes import frappe_cli
from dartwing.tests.integration import helpers

HOOKS = """app_name = "{app}"
app_title = "{app}"
app_publisher = "Dartwing tests"
app_description = "A throwaway app written by Dartwing's tests"
app_email = "dev@dartwing.dev"
app_license = "MIT"
"""


def bench(*args: str) -> str:
	"""``bench --site SITE ARGS`` as a child process; its output (an assertion error if it fails)."""
	done = subprocess.run(
		frappe_cli(frappe.local.site, *args),
		cwd=helpers.SITES_PATH,
		capture_output=True,
		text=True,
		timeout=300,
	)
	assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
	return done.stdout


def execute(method: str, **kwargs):
	"""What a user runs in a terminal: ``bench execute`` (commits, prints the answer as JSON)."""
	output = bench("execute", method, "--kwargs", json.dumps(kwargs)).strip()
	return json.loads(output.splitlines()[-1]) if output else None


def forget_cached_apps() -> None:
	"""This process learns what another process installed (hooks, installed apps). The test process
	is one long request for Frappe's request cache: empty it before clearing the cache (which reads
	the hooks again) and after; end the transaction, whose snapshot predates the other process's work."""
	frappe.db.rollback()
	getattr(frappe.local, "request_cache", {}).clear()
	frappe.clear_cache()
	getattr(frappe.local, "request_cache", {}).clear()


class ThrowawayApp:
	def __init__(self, name: str):
		self.name = name
		self.root = os.path.join(os.path.dirname(helpers.SITES_PATH), "apps", name)
		self.package = os.path.join(self.root, name)
		self.pth = os.path.join(sysconfig.get_paths()["purelib"], f"{name}.pth")
		self.apps_txt = os.path.join(helpers.SITES_PATH, "apps.txt")
		self.installed = False
		if os.path.exists(self.root):
			raise FileExistsError(f"{self.root} exists; the bench has an app of that name")
		os.makedirs(self.package)
		self.write("__init__.py", '__version__ = "0.0.1"\n')
		self.write("modules.txt", "")
		self.write("patches.txt", "")
		with open(os.path.join(self.package, "hooks.py"), "w") as hooks:
			hooks.write(HOOKS.format(app=name))
		with open(self.pth, "w") as pth:
			pth.write(self.root + "\n")
		with open(self.apps_txt) as apps:
			self._apps_listed = apps.read()
		with open(self.apps_txt, "w") as apps:
			apps.write(self._apps_listed.rstrip("\n") + f"\n{name}\n")
		site.addsitedir(os.path.dirname(self.pth))
		importlib.invalidate_caches()

	def path(self, relative: str) -> str:
		return os.path.join(self.package, relative)

	def write(self, relative: str, text: str) -> None:
		"""Add or replace a file of the package; text for ``hooks.py`` is appended to the hooks."""
		path = self.path(relative)
		os.makedirs(os.path.dirname(path), exist_ok=True)
		for parent in _packages_between(self.package, os.path.dirname(path)):
			init = os.path.join(parent, "__init__.py")
			if not os.path.exists(init):
				open(init, "w").close()
		with open(path, "a" if relative == "hooks.py" else "w") as file:
			file.write(("\n" if relative == "hooks.py" else "") + text)
		# This process imports the new text next time (the workers are new processes anyway).
		sys.modules.pop(f"{self.name}.{relative[:-3].replace(os.sep, '.')}", None)
		importlib.invalidate_caches()

	def install(self) -> None:
		bench("install-app", self.name)
		self.installed = True
		forget_cached_apps()

	def remove(self) -> None:
		frappe.db.rollback()
		for job_type in frappe.get_all(
			"Job Type", filters={"name": ("like", f"{self.name}.%")}, pluck="name"
		):
			frappe.db.delete("Job Schedule", {"job_type": job_type})
			helpers.delete_job_type(job_type)
		frappe.db.delete("Job Schedule", {"schedule_name": ("like", f"{self.name}%")})
		frappe.db.commit()
		if self.installed:
			subprocess.run(
				frappe_cli(frappe.local.site, "uninstall-app", self.name, "--yes", "--no-backup", "--force"),
				cwd=helpers.SITES_PATH,
				capture_output=True,
				timeout=300,
			)
		with open(self.apps_txt, "w") as apps:
			apps.write(self._apps_listed)
		if os.path.exists(self.pth):
			os.remove(self.pth)
		shutil.rmtree(self.root, ignore_errors=True)
		for module in [m for m in list(sys.modules) if m == self.name or m.startswith(f"{self.name}.")]:
			sys.modules.pop(module, None)
		forget_cached_apps()


def _packages_between(top: str, folder: str) -> list[str]:
	"""The folders from below ``top`` down to ``folder``, each of which must be a package."""
	relative = os.path.relpath(folder, top)
	if relative == ".":
		return []
	parts = relative.split(os.sep)
	return [os.path.join(top, *parts[: i + 1]) for i in range(len(parts))]
