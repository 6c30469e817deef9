"""The code blocks of a Markdown document, as ``test_docs`` runs them.

Contract: ``blocks(path)`` returns the fenced blocks of a document in order, each with its kind:
- ``file``: a ``python`` block whose first line is ``# app/path.py``: that file of a throwaway app
  (``hooks.py`` text adds to the app's hooks);
- ``console``: any other ``python`` block: run as in ``bench console``, as Administrator;
- ``curl``: a ``bash`` / ``sh`` / ``shell`` block that calls ``curl``: run with bash against a
  running site;
- ``skipped``: a block right after a ``<!-- not run: why -->`` line, and every other block (JSON
  answers, shell setup, bench commands).
"""

import re
from dataclasses import dataclass

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not run:.*-->\s*$")
FILE_LINE = re.compile(r"^# ([a-z_][a-z0-9_]*)/([\w/]+\.py)\s*$")


@dataclass
class Block:
	kind: str
	code: str
	line: int
	app: str | None = None
	file: str | None = None


def blocks(path: str) -> list[Block]:
	with open(path) as document:
		text = document.read()
	found = []
	for match in FENCE.finditer(text):
		language, code = match.group(1).lower(), match.group(2)
		line = text.count("\n", 0, match.start()) + 1
		before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
		first = code.split("\n", 1)[0]
		if NOT_RUN.search(before):
			found.append(Block("skipped", code, line))
		elif language == "python" and (file_line := FILE_LINE.match(first)):
			found.append(Block("file", code.split("\n", 1)[1], line, file_line.group(1), file_line.group(2)))
		elif language == "python":
			found.append(Block("console", code, line))
		elif language in ("bash", "sh", "shell") and re.search(r"(^|\s)curl\s", code):
			found.append(Block("curl", code, line))
		else:
			found.append(Block("skipped", code, line))
	return found
