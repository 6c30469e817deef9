"""How ``test_docs`` reads a document's code blocks (``dartwing/tests/integration/doc_blocks.py``)."""

from dartwing.tests.integration.doc_blocks import blocks

DOCUMENT = """# Title

```python
# myapp/tasks.py
def run():
	pass
```

```python
import dartwing
```

```bash
curl -s $API.get_job_status
```

```bash
./scripts/setup.sh
```

<!-- not run: needs a second machine -->
```python
connect_elsewhere()
```

```json
{"message": 1}
```
"""


def test_blocks_are_read_in_order_with_their_kind(tmp_path):
	path = tmp_path / "doc.md"
	path.write_text(DOCUMENT)
	found = blocks(str(path))
	assert [b.kind for b in found] == ["file", "console", "curl", "skipped", "skipped", "skipped"]
	file_block = found[0]
	assert (file_block.app, file_block.file, file_block.line) == ("myapp", "tasks.py", 3)
	assert file_block.code == "def run():\n\tpass\n"
	assert found[1].code == "import dartwing\n"
	assert found[4].code == "connect_elsewhere()\n"
