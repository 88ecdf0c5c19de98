"""JSON written out by orjson reads back as what the stdlib would have written."""

from __future__ import annotations

import json

import pytest

from fulfillment import jsonout


def test_compact_utf8_that_reads_back_as_the_stdlib_encoding_would():
    value = {"name": "Crème brûlée ☕", "lines": [{"quantity": 2, "price": "12.50"}],
             "nested": {"ok": True, "none": None, "ratio": 0.1}}  # fmt: skip

    written = jsonout.dumps(value)

    assert isinstance(written, bytes)
    assert json.loads(written) == json.loads(json.dumps(value)) == value
    assert b" " not in written.replace(b"Cr\xc3\xa8me", b"").split(b'"nested"')[1]
    assert "Crème brûlée ☕".encode() in written  # UTF-8, not \u escapes


def test_keys_that_are_not_strings_become_strings_as_with_the_stdlib():
    assert json.loads(jsonout.dumps({1: "a", "b": {2: 3}})) == json.loads(
        json.dumps({1: "a", "b": {2: 3}})
    )


def test_what_orjson_refuses_the_stdlib_writes_and_what_neither_can_still_fails():
    huge = {"weight": 2**70, "name": "é"}
    assert json.loads(jsonout.dumps(huge)) == huge
    with pytest.raises(TypeError):
        jsonout.dumps({"when": object()})
