"""The shard's invariants, on the plain class (no Ray): exclusivity, TTL, versions, event order."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st_

from raybench.actors import state as st


def test_lease_is_exclusive_until_released():
    s = st.StateShard(0)
    ttl = 10**10
    (g1, v1, _), (g2, _, _) = s.apply([(st.ACQUIRE, 5, 1, ttl), (st.ACQUIRE, 5, 2, ttl)])
    assert g1 and not g2 and v1 == 0
    (ok, v, _), (g3, v3, _) = s.apply([(st.CAS_RELEASE, 5, 1, 0), (st.ACQUIRE, 5, 2, ttl)])
    assert ok and v == 1 and g3 and v3 == 1
    assert s.stats()["refusals"] == 1 and s.stats()["grants"] == 2


def test_cas_needs_the_lease_and_the_expected_version():
    s = st.StateShard(0)
    assert s.apply([(st.CAS_RELEASE, 1, 9, 0)])[0][0] is False  # no lease
    s.apply([(st.ACQUIRE, 1, 9, 10**10)])
    assert s.apply([(st.CAS_RELEASE, 1, 9, 3)])[0][0] is False  # wrong version
    assert s.versions.get(1, 0) == 0
    assert s.stats()["cas_conflict"] == 2


def test_expired_lease_can_be_taken_over_and_the_old_holder_loses_it():
    s = st.StateShard(0)
    s.apply([(st.ACQUIRE, 3, 1, 1)])  # 1 ns TTL
    time.sleep(0.001)
    granted = s.apply([(st.ACQUIRE, 3, 2, 10**10)])[0][0]
    assert granted and s.stats()["expired_takeovers"] == 1
    ok = s.apply([(st.CAS_RELEASE, 3, 1, 0)])[0][0]
    assert ok is False and s.stats()["lost_releases"] == 1
    assert s.leases[3][0] == 2  # the new holder keeps it


def test_event_sequence_increases():
    s = st.StateShard(0)
    res = s.apply([(st.APPEND, k, k, 0) for k in range(5)])
    assert [r[0] for r in res] == [1, 2, 3, 4, 5]


@settings(max_examples=200, deadline=None)
@given(st_.lists(st_.tuples(st_.integers(0, 3), st_.integers(0, 2), st_.integers(1, 4)), max_size=60))
def test_random_histories_keep_the_invariants(ops):
    s = st.StateShard(0)
    holders: dict[int, int] = {}
    versions: dict[int, int] = {}
    for code, key, owner in ops:
        code = [st.ACQUIRE, st.READ_RELEASE, st.CAS_RELEASE, st.RELEASE][code]
        arg = 10**12 if code == st.ACQUIRE else versions.get(key, 0)
        result = s.apply([(code, key, owner, arg)])[0]
        if code == st.ACQUIRE:
            assert result[0] == (holders.get(key) in (None, owner))
            if result[0]:
                holders[key] = owner
        else:
            held = holders.get(key) == owner
            if code == st.CAS_RELEASE and held:
                versions[key] = versions.get(key, 0) + 1
            assert result[0] == held
            if held:
                del holders[key]
        assert s.versions.get(key, 0) == versions.get(key, 0)
    assert {k: v[0] for k, v in s.leases.items()} == holders


def test_shard_of_spreads_neighbouring_keys():
    shards = {st.shard_of(k, 4) for k in range(8)}
    assert shards == {0, 1, 2, 3}
