"""The encode side of the Redis write path (sans-IO): a leaf's JSON text exactly as the
serializer makes it, and stored texts read back by the C scanner or, when it does not read
them whole, by ``json.loads`` with its usual error."""

from __future__ import annotations

import json
import math

import pytest

from restate.backends.redis.codec import encode_leaf, loads
from restate.errors import InvalidPathError, SerializationError
from restate.missing import MISSING
from restate.serializers import json_serializer

LEAVES = [0, -7, 2**70, 1.5, True, None, "", "plain", "é✓ naïve", "\udc80 lone", [1, "a", None],
          (1, 2), [{"k": [1]}], 1e300]  # fmt: skip


@pytest.mark.parametrize("value", LEAVES)
def test_a_leaf_is_encoded_exactly_as_the_serializer_encodes_it(value):
    assert encode_leaf(value, ("a",)) == json_serializer.dumps(value)


@pytest.mark.parametrize("bad", [object(), math.nan, math.inf, b"bytes", {1, 2}])
def test_a_leaf_the_serializer_rejects_raises_serialization_error(bad):
    with pytest.raises(SerializationError):
        encode_leaf(bad, ("a",))


def test_a_dict_inside_a_list_with_a_bad_key_raises_invalid_path_error():
    with pytest.raises(InvalidPathError):
        encode_leaf([{1: "x"}], ("a",))


@pytest.mark.parametrize("text", ["1", '"s"', '{"a":[1,2.5,null]}', "[]", '"\\u00e9"'])
def test_stored_texts_read_back_as_json_loads_reads_them(text):
    assert loads(text) == json.loads(text)


def test_a_missing_node_reads_as_missing_and_a_broken_text_raises_the_decoders_error():
    assert loads(None) is MISSING
    for broken in ["1 2", "{", "", " 1x"]:
        with pytest.raises(json.JSONDecodeError):
            loads(broken)
    assert loads(" 1 ") == 1  # whitespace a foreign writer left: json.loads reads it
