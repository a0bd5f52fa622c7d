"""Threshold expression parser: every accepted form, normalization, and every malformed form."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raybench.config.sources import load_raw
from raybench.errors import ThresholdError, UsageError
from raybench.judge.grammar import parse_threshold, parse_thresholds
from raybench.judge.thresholds import SCOPE_KEYS, STAGES

#: The lighthouse preset's thresholds, as the preset file writes them.
LIGHTHOUSE_THRESHOLDS = tuple(load_raw(preset="lighthouse")["sla"]["thresholds"])


@pytest.mark.parametrize(
    ("text", "metric", "op", "target", "q", "scope", "norm"),
    [
        ("p99<100ms", "percentile", "<", 100.0, 99.0, (), "p99<100ms"),
        ("p50<=50ms", "percentile", "<=", 50.0, 50.0, (), "p50<=50ms"),
        ("p99.9<1s", "percentile", "<", 1000.0, 99.9, (), "p99.9<1000ms"),
        ("p(95) < 200ms", "percentile", "<", 200.0, 95.0, (), "p95<200ms"),
        ("p100<2s", "percentile", "<", 2000.0, 100.0, (), "p100<2000ms"),
        ("med<5ms", "percentile", "<", 5.0, 50.0, (), "p50<5ms"),
        ("mean<60ms", "mean", "<", 60.0, None, (), "mean<60ms"),
        ("avg < 60ms", "mean", "<", 60.0, None, (), "mean<60ms"),
        ("max<2s", "max", "<", 2000.0, None, (), "max<2000ms"),
        ("min>=800us", "min", ">=", 0.8, None, (), "min>=0.8ms"),
        ("error_rate<0.1%", "error_rate", "<", 0.001, None, (), "error_rate<0.1%"),
        ("error_rate<0.001", "error_rate", "<", 0.001, None, (), "error_rate<0.1%"),
        ("throughput>=950/s", "throughput", ">=", 950.0, None, (), "throughput>=950/s"),
        ("throughput>=95%", "throughput", ">=", 0.95, None, (), "throughput>=95%"),
        ("growth(rss)<10%", "growth", "<", 0.1, None, (), "growth(rss)<10%"),
        ("p99{cls=risky}<100ms", "percentile", "<", 100.0, 99.0, (("cls", "risky"),), "p99{cls=risky}<100ms"),
        (
            "p99{ escalated = false , cls = risky }<100ms",
            "percentile",
            "<",
            100.0,
            99.0,
            (("cls", "risky"), ("escalated", "false")),
            "p99{cls=risky,escalated=false}<100ms",
        ),
        ("p99{node='10.0.0.1'}<1s", "percentile", "<", 1000.0, 99.0, (("node", "10.0.0.1"),), None),
        ('p99{region="eu west"}<1s', "percentile", "<", 1000.0, 99.0, (("region", "eu west"),), None),
        ("growth(rss){role=host}<10%", "growth", "<", 0.1, None, (("role", "host"),), None),
    ],
)
def test_accepted_forms(text, metric, op, target, q, scope, norm):
    th = parse_threshold(text)
    assert (th.metric, th.op, th.target, th.q, th.scope) == (metric, op, target, q, scope)
    assert th.expression == text
    if norm is not None:
        assert th.id == norm
    # the normalized form parses back to the same threshold
    assert parse_threshold(th.id).id == th.id


def test_share_and_stage_scope():
    th = parse_threshold("share(latency<100ms){escalated=false}>=99%")
    assert (th.metric, th.share_op, th.share_limit_ms, th.target) == ("share", "<", 100.0, 0.99)
    assert th.column == "latency_ms"
    fuse = parse_threshold("p99{stage=fuse}<5ms")
    assert fuse.stage == "fuse" and fuse.column == "fuse_ms"
    for stage in STAGES:
        assert parse_threshold(f"mean{{stage={stage}}}<1s").column == f"{stage}_ms"


def test_lighthouse_defaults_parse_and_are_distinct():
    ths = parse_thresholds(list(LIGHTHOUSE_THRESHOLDS))
    assert len({t.id for t in ths}) == 8
    assert [t.metric for t in ths] == [
        "share", "percentile", "mean", "error_rate", "throughput", "percentile", "percentile", "growth"
    ]  # fmt: skip


def test_duplicate_thresholds_refused():
    with pytest.raises(ThresholdError, match="given twice"):
        parse_thresholds(["p99<1s", "p99 < 1000ms"])


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "a metric"),
        ("q99<1s", 0, "a metric"),
        ("p<1s", 1, "percentile number"),
        ("p0<1s", 1, "(0, 100]"),
        ("p101<1s", 1, "(0, 100]"),
        ("p(99<1s", 4, "')'"),
        ("p99", 3, "comparison"),
        ("p99=1s", 3, "comparison"),
        ("p99<", 4, "duration"),
        ("p99<100", 4, "duration"),
        ("p99<<1s", 4, "duration"),
        ("p99<1parsec", 4, "duration"),
        ("p99<1s extra", 7, "end of the expression"),
        ("p99{cls=risky<1s", 13, "',' or '}'"),
        ("p99{cls=}<1s", 8, "value for cls"),
        ("p99{color=red}<1s", 4, "scope key"),
        ("p99{cls=a,cls=b}<1s", 10, "once"),
        ("p99{escalated=maybe}<1s", 14, "true or false"),
        ("p99{stage=disk}<1s", 10, "a stage"),
        ("p99{role=host}<1s", 4, "allowed for percentile"),
        ("p99{node='abc}<1s", 9, "closing"),
        ("error_rate{stage=fuse}<1%", 11, "allowed for error_rate"),
        ("growth(rss){cls=risky}<10%", 12, "allowed for growth"),
        ("error_rate<1ms", 12, "end of the expression"),
        ("error_rate<200%", 11, "between 0% and 100%"),
        ("share(latency<1s)>=150%", 19, "between 0% and 100%"),
        ("share(cpu<1s)>=99%", 6, "'latency'"),
        ("share(latency<1s>=99%", 16, "')'"),
        ("growth(cpu)<10%", 7, "'rss'"),
        ("throughput>=95", 14, "'/s'"),
        ("throughput>=fast", 12, "rate"),
        ("mean<-5ms", 5, "duration"),
    ],
)
def test_malformed_names_position_and_allowed(text, position, expected):
    with pytest.raises(ThresholdError, match=re.escape(expected)) as info:
        parse_threshold(text)
    msg = str(info.value)
    assert f"at position {position} " in msg
    assert "allowed metrics: pN" in msg and "growth(rss)" in msg and "escalated=true|false" in msg
    assert "\n" not in msg
    assert isinstance(info.value, UsageError)  # the CLI maps it to exit 2


def test_non_string_refused():
    with pytest.raises(ThresholdError, match="not a string"):
        parse_threshold(99)  # type: ignore[arg-type]


_values = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)


@settings(deadline=None)  # timing is not what is tested here
@given(
    q=st.sampled_from(["50", "90", "99", "99.9", "99.99", "100"]),
    op=st.sampled_from(["<", "<=", ">", ">="]),
    ms=st.integers(1, 10**6),
    scope=st.dictionaries(st.sampled_from(["cls", "node", "region"]), _values, max_size=3),
    escalated=st.sampled_from([None, "true", "false"]),
)
def test_normalized_id_is_stable_under_spacing_and_scope_order(q, op, ms, scope, escalated):
    pairs = dict(scope)
    if escalated:
        pairs["escalated"] = escalated
    items = list(pairs.items())
    forward = ",".join(f"{k}={v}" for k, v in items)
    backward = " , ".join(f"{k} = {v}" for k, v in reversed(items))
    a = parse_threshold(f"p{q}" + (f"{{{forward}}}" if items else "") + f"{op}{ms}ms")
    b = parse_threshold(f" p{q} " + (f"{{ {backward} }}" if items else "") + f" {op} {ms / 1000}s ")
    assert a.id == b.id
    assert a.target == pytest.approx(ms)
    assert [k for k, _ in a.scope] == [k for k in SCOPE_KEYS if k in pairs]
