from setuptools import find_packages, setup

from dartwing import __version__ as version

with open("requirements.txt") as f:
	install_requires = [line for line in f.read().strip().split("\n") if line and not line.startswith("#")]

setup(
	name="dartwing",
	version=version,
	description="Durable background jobs for Frappe: retries, dead letter, timeouts, cancellation, progress and history",
	author="Dartwing",
	author_email="dev@dartwing.dev",
	packages=find_packages(),
	zip_safe=False,
	include_package_data=True,
	install_requires=install_requires,
	python_requires=">=3.10,<3.13",  # as Frappe v15
)
