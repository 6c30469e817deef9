import html

from dartwing.dartwing_core.background_jobs.stored_text import DATA_LENGTH, plain, unescape_legacy

WRITTEN = 'it\'s "quoted" & <b>bold</b> <img src=x onerror="alert(1)">'


def _legacy(value, limit=None):
	"""What the engine stored before text was kept as written."""
	text = html.escape(html.unescape(str(value)), quote=True)
	if limit is not None and len(text) > limit:
		text = text[:limit]
		cut = text.rfind("&")
		if cut != -1 and ";" not in text[cut:]:
			text = text[:cut]
	return text


def test_text_is_stored_as_written():
	assert plain(WRITTEN) == WRITTEN
	assert plain("&lt;b&gt; &amp;") == "&lt;b&gt; &amp;"


def test_none_stays_none_and_other_values_become_text():
	assert plain(None) is None
	assert plain(42) == "42"


def test_text_is_cut_to_the_column_length():
	assert plain("<" * (DATA_LENGTH + 5), DATA_LENGTH) == "<" * DATA_LENGTH
	assert plain("abc", 2) == "ab"


def test_legacy_text_reads_as_it_was_written():
	for written in (WRITTEN, "a & b", "x < y", "'single'", "5 > 4 & 3 < 4", "AT&T", "&"):
		assert unescape_legacy(_legacy(written)) == written
		assert unescape_legacy(_legacy(written, DATA_LENGTH), DATA_LENGTH) == written


def test_a_legacy_cut_undoes_to_the_text_it_kept():
	written = "a" * (DATA_LENGTH - 3) + "<<<"
	stored = _legacy(written, DATA_LENGTH)
	assert unescape_legacy(stored) is None  # nothing to undo: the cut dropped the entity
	written = "<" * 60
	stored = _legacy(written, DATA_LENGTH)
	assert unescape_legacy(stored) == "<" * (len(stored) // 4)
	# The first patch's SQL cut could leave half an entity at the end of a full column: it goes.
	cut = "a &amp; b".ljust(DATA_LENGTH - 2, "c") + "&l"
	assert unescape_legacy(cut, DATA_LENGTH) == "a & b".ljust(DATA_LENGTH - 6, "c")
	assert unescape_legacy("a &amp; b &l") is None  # not a full column: not a cut


def test_text_the_old_writer_could_not_have_written_is_left_alone():
	for text in (
		None,
		"",
		"plain words",
		"a & b",  # a bare ampersand
		"<b>bold</b> &amp;",  # raw markup
		"it's &amp; done",  # a raw quote
		"&nbsp; &#39;",  # entities html.escape never writes
		"tom&amp;jerry & co",
	):
		assert unescape_legacy(text) is None, text


def test_undoing_twice_changes_nothing_more():
	for written in (WRITTEN, "a & b", "x < y", "AT&T", "&", "&" * DATA_LENGTH):
		once = unescape_legacy(_legacy(written, DATA_LENGTH), DATA_LENGTH)
		assert unescape_legacy(once, DATA_LENGTH) is None
