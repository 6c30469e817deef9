from dartwing.dartwing_core.background_jobs.stored_text import DATA_LENGTH, plain


def test_markup_is_stored_as_text():
	assert plain('<img src=x onerror="alert(1)">') == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"
	assert plain("<script>alert('x')</script>") == "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
	assert plain("a & b") == "a &amp; b"


def test_none_stays_none_and_other_values_become_text():
	assert plain(None) is None
	assert plain(42) == "42"


def test_escaping_twice_changes_nothing():
	once = plain("<b>\"quoted\" & 'single'</b>")
	assert plain(once) == once
	assert plain(plain(plain("x < y"))) == "x &lt; y"


def test_a_cut_never_leaves_half_an_entity():
	text = plain("a" * (DATA_LENGTH - 3) + "<<<", DATA_LENGTH)
	assert len(text) <= DATA_LENGTH
	assert not text.endswith(("&", "&l", "&lt"))
	assert text == "a" * (DATA_LENGTH - 3)
	assert plain("abc", 2) == "ab"
