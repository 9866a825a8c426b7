"""Run ids: UUID version 7, so runs started close together sit close together in the
stores' indexes (see ``tether.client.new_id``)."""

from __future__ import annotations

import time
import uuid

from tether.client import new_id


def test_run_ids_are_uuid7_hex() -> None:
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for run_id in ids:
        assert len(run_id) == 32 and run_id == run_id.lower()
        parsed = uuid.UUID(hex=run_id)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.hex == run_id


def test_run_ids_follow_the_clock() -> None:
    before = time.time_ns() // 1_000_000
    run_id = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(run_id[:12], 16) <= after
    # An id of a later millisecond sorts after: waiting for the clock to move on.
    while time.time_ns() // 1_000_000 <= after:
        pass
    assert new_id() > run_id
