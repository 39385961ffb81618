"""The disclosure log's hash chain: intact chains verify, any single mutation is detected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from consent.audit import GENESIS, chain_hash, verify_chain

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build_chain(n: int) -> tuple[list[dict], tuple[int, str]]:
    events, prev = [], GENESIS
    for i in range(n):
        event = {
            "seq": i + 1, "at": T0 + timedelta(seconds=i), "learner_id": "L", "provider_id": f"P{i % 3}",
            "client_id": "c", "token_id": f"t{i}", "section": ["badges", "skills", "activities"][i % 3],
            "action": "read", "outcome": "allowed" if i % 4 else "denied", "reason": None if i % 4 else "no_grant",
            "grant_id": None, "purpose": "p", "entry_count": i, "prev_hash": prev,
        }
        event["hash"] = prev = chain_hash(prev, event)
        events.append(event)
    return events, (n, prev)


def test_untouched_chain_verifies():
    events, head = build_chain(10)
    assert verify_chain("L", events, head) == []
    assert verify_chain("L", [], None) == []


MUTATIONS = ["edit", "delete", "swap", "truncate", "append_forged", "drop_head"]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=2, max_value=30), data=st.data())
def test_any_single_mutation_is_detected(n, data):  # type: ignore[no-untyped-def]
    events, head = build_chain(n)
    mutation = data.draw(st.sampled_from(MUTATIONS))
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    if mutation == "edit":
        field = data.draw(st.sampled_from(["provider_id", "section", "outcome", "entry_count", "at", "purpose"]))
        original = events[index][field]
        events[index][field] = original + timedelta(seconds=1) if field == "at" else (
            original + 1 if field == "entry_count" else f"{original}-x")
    elif mutation == "delete":
        del events[index]
    elif mutation == "swap":
        other = (index + 1) % n
        events[index], events[other] = events[other], events[index]
    elif mutation == "truncate":
        events = events[:index] if index < n else events[:-1]
    elif mutation == "append_forged":
        forged = dict(events[-1], seq=n + 1, prev_hash=events[-1]["hash"], entry_count=999)
        forged["hash"] = chain_hash(forged["prev_hash"], forged)
        events.append(forged)  # a consistent extension the head does not know about
    else:
        head = None
    assert verify_chain("L", events, head), f"{mutation} at {index} went unnoticed"
