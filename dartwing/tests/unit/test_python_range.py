"""The Python range in setup.py is Frappe v15's, and the code runs on its oldest Python."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# Frappe v15's pyproject.toml: requires-python = ">=3.10,<3.13"
FRAPPE_V15_RANGE = ">=3.10,<3.13"
# Names that exist only from Python 3.11 on: (module, name).
NEWER_THAN_3_10 = {
	("datetime", "UTC"),
	("enum", "StrEnum"),
	("typing", "Self"),
	("typing", "LiteralString"),
	("typing", "Never"),
	("typing", "assert_never"),
	("typing", "reveal_type"),
}
NEWER_MODULES = {"tomllib", "wsgiref.types"}
NEWER_BUILTINS = {"ExceptionGroup", "BaseExceptionGroup"}


def test_setup_py_allows_exactly_frappe_v15s_pythons():
	text = (ROOT / "setup.py").read_text()
	(declared,) = re.findall(r'python_requires\s*=\s*"([^"]+)"', text)
	assert declared.replace(" ", "") == FRAPPE_V15_RANGE


def _uses_of_newer_python(path: Path) -> list[str]:
	tree = ast.parse(path.read_text(), filename=str(path))
	found = []
	for node in ast.walk(tree):
		if isinstance(node, ast.ImportFrom) and node.module:
			found += [
				f"{node.module}.{a.name}" for a in node.names if (node.module, a.name) in NEWER_THAN_3_10
			]
			if node.module in NEWER_MODULES:
				found.append(node.module)
		elif isinstance(node, ast.Import):
			found += [a.name for a in node.names if a.name in NEWER_MODULES]
		elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
			if (node.value.id, node.attr) in NEWER_THAN_3_10:
				found.append(f"{node.value.id}.{node.attr}")
		elif isinstance(node, ast.Name) and node.id in NEWER_BUILTINS:
			found.append(node.id)
		elif isinstance(node, getattr(ast, "TryStar", ())):  # ast has no TryStar before 3.11
			found.append("except*")
	return [f"{path.relative_to(ROOT)}:{name}" for name in found]


def test_no_code_needs_a_python_newer_than_3_10():
	sources = [p for p in (ROOT / "dartwing").rglob("*.py") if "node_modules" not in p.parts]
	assert len(sources) > 50
	offending = [use for path in sources for use in _uses_of_newer_python(path)]
	assert offending == []
