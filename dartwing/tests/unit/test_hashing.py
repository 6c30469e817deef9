import pytest

from dartwing.dartwing_core.background_jobs import hashing


def test_canonical_json_ignores_key_order_and_whitespace():
	assert hashing.canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == '{"a":[1,{"x":1,"y":2}],"b":1}'


def test_hash_covers_type_organization_and_parameters():
	base = hashing.parameters_hash("sync", "Acme", {"a": 1, "b": 2})
	assert base == hashing.parameters_hash("sync", "Acme", {"b": 2, "a": 1})
	assert base != hashing.parameters_hash("sync2", "Acme", {"a": 1, "b": 2})
	assert base != hashing.parameters_hash("sync", "Beta", {"a": 1, "b": 2})
	assert base != hashing.parameters_hash("sync", "Acme", {"a": 1, "b": 3})
	assert hashing.parameters_hash("sync", "Acme", None) == hashing.parameters_hash("sync", "Acme", {})
	assert len(base) == 64


def test_hash_fields_cannot_bleed_into_each_other():
	assert hashing.parameters_hash("a", "bc", {}) != hashing.parameters_hash("ab", "c", {})


def test_nan_is_not_json():
	with pytest.raises(ValueError):
		hashing.canonical_json({"x": float("nan")})


def test_concurrency_key_rendering():
	values = {"username": "ann", "repo": {"id": 3}, "owner": "u@x"}
	assert hashing.render_concurrency_key("{username}", values) == "ann"
	assert hashing.render_concurrency_key("gh:{username}:{repo}", values) == 'gh:ann:{"id":3}'
	assert hashing.render_concurrency_key("", values) is None
	assert hashing.render_concurrency_key(None, values) is None
	with pytest.raises(hashing.MissingKeyPlaceholder):
		hashing.render_concurrency_key("{missing}", values)
	assert hashing.template_placeholders("{a}-{b}") == ["a", "b"]
