"""The agent hosts' request buffer: packed rows come out as the same requests batch a plain tuple
per row gives, with nulls, names, derived and constant columns filled in."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pyarrow as pa
import pytest

from raybench.results import schema, store
from raybench.results.recording import NULL_INT, NULL_MS, OUTCOME_CODE, PACKED, RequestRows, RowBuffer

REGIONS, CLASSES = ["us-east", "eu-west", "ap-south"], ["safe", "risky", "complex"]
WALL, WARM_END = 1_790_000_000_000_000_000, 5_000_000_000


def _request(rng: random.Random, i: int) -> dict:
    """One request's measured values; about half the stages did not run (None)."""
    intended = 4_000_000_000 + i * 2_000_000
    start = intended + rng.randrange(0, 3_000_000)
    end = start + rng.randrange(1_000_000, 90_000_000)
    has_key = rng.random() < 0.7

    def ms() -> float | None:
        return rng.uniform(0.01, 80.0) if rng.random() < 0.5 else None

    return {
        "request_id": (3 << 40) | i, "perf_intended": intended, "perf_start": start, "perf_end": end,
        "file_key": rng.randrange(0, 10_000) if has_key else None,
        "lease_start_ns": WALL + intended + 1 if has_key else None, "lease_end_ns": WALL + end if has_key else None,
        **{name: ms() for name, code in PACKED if code == "d"},
        "agent_id": rng.randrange(0, 1000), "conflicts": rng.randrange(0, 4),
        "region": rng.randrange(len(REGIONS)), "cls": rng.randrange(len(CLASSES)),
        "outcome": rng.choice(schema.OUTCOMES), "escalated": rng.random() < 0.2, "cache_hit": rng.random() < 0.3,
        "error": rng.choice([None, None, "boom", "lease expired or version changed before commit"]),
    }  # fmt: skip


def _expected_row(r: dict) -> tuple:
    """The row as a tuple in the requests column order, computed in Python (what hosts wrote
    before the packed buffer)."""
    i, s, e = r["perf_intended"], r["perf_start"], r["perf_end"]
    return (
        "run-1", r["request_id"], r["agent_id"], 3, "node-9", REGIONS[r["region"]], CLASSES[r["cls"]], i < WARM_END,
        i + WALL, s + WALL, e + WALL, (e - i) / 1e6, (e - s) / 1e6, (s - i) / 1e6, r["outcome"], r["error"],
        r["escalated"], r["cache_hit"], *(r[name] for name, code in PACKED if code == "d"),
        r["file_key"], r["lease_start_ns"], r["lease_end_ns"], r["conflicts"],
    )  # fmt: skip


def _packed(r: dict, *, nulls: bool) -> tuple:
    """The values a host adds: None for a missing value, or the fast path's null markers."""
    out = []
    for name, code in PACKED:
        v = OUTCOME_CODE[r[name]] if name == "outcome" else r[name]
        if v is None and nulls:
            v = NULL_MS if code == "d" else NULL_INT
        out.append(v)
    return tuple(out)


def _buffer() -> RequestRows:
    buf = RequestRows("run-1", 3, "node-9", REGIONS, CLASSES)
    buf.wall_offset_ns, buf.warm_end_perf_ns = WALL, WARM_END
    return buf


@pytest.mark.parametrize("nulls", [True, False], ids=["null-markers", "none"])
def test_packed_rows_give_the_batch_plain_tuples_give(nulls: bool):
    rng = random.Random(7)
    requests = [_request(rng, i) for i in range(2000)]
    buf = _buffer()
    for r in requests:
        buf.add(_packed(r, nulls=nulls))
        if r["error"] is not None:
            buf.error(r["error"])
    assert len(buf) == 2000
    batch = buf.take()
    assert batch is not None and len(buf) == 0 and buf.total == 2000 and buf.take() is None

    plain = RowBuffer("requests")
    for r in requests:
        plain.append(_expected_row(r))
    expected = plain.take()
    assert batch.schema == schema.schema("requests", final=False)
    assert batch.schema.metadata == expected.schema.metadata
    for name in batch.schema.names:
        assert batch.column(name).to_pylist() == expected.column(name).to_pylist(), name
    # the nulls are Arrow nulls, not NaN or -1
    assert batch.column("llm_ms").null_count == sum(r["llm_ms"] is None for r in requests) > 0
    assert batch.column("file_key").null_count == sum(r["file_key"] is None for r in requests) > 0
    assert not any(math.isnan(x) for x in batch.column("policy_ms").drop_null().to_pylist())


def test_each_take_starts_a_new_batch_and_errors_stay_with_their_rows(tmp_path: Path):
    rng = random.Random(3)
    buf = _buffer()
    app = store.StreamAppender(tmp_path, "requests")
    seen = []
    for k in range(3):
        for i in range(50 * k, 50 * k + 40 + k):
            r = _request(rng, i)
            r["error"] = f"error of request {i}" if i % 7 == 0 else None
            buf.add(_packed(r, nulls=True))
            if r["error"]:
                buf.error(r["error"])
            seen.append((r["request_id"], r["error"]))
        app.write(buf.take())  # streams without a cast: the schema is the stream's
    app.close()
    assert store.finalize_stream(tmp_path, "requests") == len(seen)
    t = store.read_table(tmp_path, "requests")
    got = list(zip(t.column("request_id").to_pylist(), t.column("error").to_pylist(), strict=True))
    assert got == seen
    assert pa.types.is_dictionary(t.schema.field("region").type)


def test_packed_rows_travel_and_become_the_same_batch_elsewhere():
    """Hosts ship PackedRows (pickled by Ray) and the aggregator builds the batch: the same one."""
    import pickle

    from raybench.results.recording import to_batch

    rng = random.Random(11)
    requests = [_request(rng, i) for i in range(300)]
    here, there = _buffer(), _buffer()
    for buf in (here, there):
        for r in requests:
            buf.add(_packed(r, nulls=True))
            if r["error"] is not None:
                buf.error(r["error"])
    packed = there.take_packed()
    assert packed is not None and there.take_packed() is None and there.total == 300
    assert to_batch(pickle.loads(pickle.dumps(packed))).equals(here.take())
