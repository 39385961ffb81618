"""The sealing primitives on their own (pure: no database)."""

from __future__ import annotations

from uuid import UUID

import pytest

from hub.records.crypto import DataKey, FieldContext, KeyRing, UnreadableData, kek_id, new_data_key

LEARNER, OTHER = UUID(int=1), UUID(int=2)
PROVIDER = UUID(int=9)
WHERE = FieldContext(learner_id=LEARNER, section="conduct", provider_id=PROVIDER, source_id="c-1")


def test_keks_must_be_aes_256_and_are_named_by_a_hash():
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing(b"\x00" * 16)
    ring = KeyRing(b"\x01" * 32, [b"\x02" * 32])
    assert ring.current_id == kek_id(b"\x01" * 32) and ring.ids == {kek_id(b"\x01" * 32), kek_id(b"\x02" * 32)}


def test_wrapped_keys_are_bound_to_their_learner_and_kek():
    ring = KeyRing(b"\x01" * 32)
    dek = new_data_key()
    wrapped, by = ring.wrap(LEARNER, dek)
    assert ring.unwrap(LEARNER, wrapped, by) == dek and dek not in wrapped
    with pytest.raises(UnreadableData, match="failed authentication"):
        ring.unwrap(OTHER, wrapped, by)
    with pytest.raises(UnreadableData, match="not configured"):
        KeyRing(b"\x03" * 32).unwrap(LEARNER, wrapped, by)
    # A previous KEK unwraps; wrapping always uses the current one.
    rotated = KeyRing(b"\x03" * 32, [b"\x01" * 32])
    assert rotated.unwrap(LEARNER, wrapped, by) == dek
    assert rotated.wrap(LEARNER, dek)[1] == rotated.current_id


def test_fields_round_trip_and_refuse_other_places():
    key = DataKey(LEARNER, new_data_key())
    values = {"category": "Disruption", "resolution": {"status": "open"}, "notes": None}
    sealed = key.seal_fields(WHERE, values)
    assert key.open_fields(WHERE, sealed) == values
    for elsewhere in (
        FieldContext(learner_id=LEARNER, section="wellbeing", provider_id=PROVIDER, source_id="c-1"),
        FieldContext(learner_id=LEARNER, section="conduct", provider_id=UUID(int=8), source_id="c-1"),
        FieldContext(learner_id=LEARNER, section="conduct", provider_id=PROVIDER, source_id="c-2"),
    ):
        with pytest.raises(UnreadableData):
            key.open_fields(elsewhere, sealed)
    with pytest.raises(UnreadableData):
        key.open_fields(WHERE, {k: v for k, v in sealed.items() if k != "notes"})
    with pytest.raises(UnreadableData):
        DataKey(LEARNER, new_data_key()).open_fields(WHERE, sealed)
    with pytest.raises(ValueError, match="own learner"):
        key.seal_fields(FieldContext(learner_id=OTHER, section="conduct", provider_id=PROVIDER, source_id="c-1"), values)


def test_content_digest_is_keyed_per_learner_key():
    a, b = DataKey(LEARNER, new_data_key()), DataKey(LEARNER, new_data_key())
    assert a.digest(b"same") == a.digest(b"same") != b.digest(b"same")
