"""The cluster registry against a real redis-server, without browsers: cap, records, expiry, lock, outage,
data loss."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio
from pydantic import ValidationError

from app.core.config import Settings
from app.core.errors import RegistryUnavailable, TooManySessions, UserDataLocked
from app.schemas.tiktok import SessionMode
from app.services.cluster.registry import (
    RECOVERY_KEY,
    SLOTS_KEY,
    ClusterRegistry,
    master_lock_key,
    nonce_key,
    record_key,
)
from app.services.tiktok.service import session_record
from app.services.tiktok.session import LiveSession
from tests.support.harness import settings_for_test
from tests.support.redis_server import RedisServer

MASTER_LOCK_KEY = master_lock_key("default")

TTL = 2  # REGISTRY_TTL, seconds


def cluster_settings(redis_server: RedisServer, name: str, **values: Any) -> Settings:
    return settings_for_test(
        REDIS_URL=redis_server.url,
        API_KEYS=["k"],
        INSTANCE_URL=f"http://{name}.invalid:5681",
        REGISTRY_TTL=TTL,
        **values,
    )


@asynccontextmanager
async def registry(redis_server: RedisServer, name: str, **values: Any) -> AsyncIterator[ClusterRegistry]:
    cluster = ClusterRegistry(cluster_settings(redis_server, name, **values))
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


async def settled(store: redis.asyncio.Redis) -> float:
    """Until the registry grants again after a (real or apparent) data loss; how long that took, in s."""
    started = time.monotonic()
    while await store.exists(RECOVERY_KEY):
        assert time.monotonic() - started < TTL + 2, f"{RECOVERY_KEY} outlived REGISTRY_TTL"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def live_session(settings: Settings, ended: list[str] | None = None) -> LiveSession:
    """A real LiveSession with no browser: enough to be published, listed and closed."""
    session = LiveSession(str(uuid.uuid4()), SessionMode.READ, settings)

    async def forget(closed: LiveSession) -> None:
        if ended is not None:
            ended.append(closed.id)

    session.go_live(forget)
    return session


async def publish(cluster: ClusterRegistry, session: LiveSession, reservation: str) -> None:
    """What the service does once a session is live: publish its record, and serve it to the heartbeat."""
    cluster.watch(lambda: [session_record(session, cluster)] if session.state == "live" else [])
    await cluster.publish(session_record(session, cluster), reservation)


async def test_concurrent_reservations_from_two_instances_never_pass_the_cap(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with (
        registry(redis_server, "a", CLUSTER_MAX_SESSIONS=5) as a,
        registry(redis_server, "b", CLUSTER_MAX_SESSIONS=5) as b,
    ):
        await settled(store)
        clusters = [a, b] * 20
        outcomes = await asyncio.gather(*(cluster.reserve() for cluster in clusters), return_exceptions=True)
        granted = [(c, o) for c, o in zip(clusters, outcomes, strict=True) if isinstance(o, str)]
        refused = [o for o in outcomes if isinstance(o, TooManySessions)]
        assert (len(granted), len(refused)) == (5, 35)
        assert await store.zcard(SLOTS_KEY) == 5
        assert refused[0].retry_after >= 1 and refused[0].extra["limit"] == 5

        owner, reservation = granted[0]
        await owner.release(reservation)
        assert await store.zcard(SLOTS_KEY) == 4
        assert isinstance(await b.reserve(), str)
        with pytest.raises(TooManySessions):
            await a.reserve()


async def test_a_published_session_is_read_by_the_other_instance_and_withdrawn_at_its_end(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "a") as a, registry(redis_server, "b") as b:
        await settled(store)
        reservation = await a.reserve()
        session = await live_session(cluster_settings(redis_server, "a"))
        await publish(a, session, reservation)
        assert await store.zrange(SLOTS_KEY, 0, -1) == [session.id], "the reservation became the session"

        record = await b.lookup(session.id)
        assert record is not None
        assert (record.owner_url, record.owner_id, record.token) == (
            "http://a.invalid:5681",
            a.instance_id,
            session.token,
        )
        assert record.info().session_id == session.id and record.info().mode == SessionMode.READ
        assert [r.id for r in await b.records()] == [session.id]
        assert 0 < await store.pttl(record_key(session.id)) <= TTL * 1000

        await a.withdraw(session.id)
        assert await b.lookup(session.id) is None
        assert await b.records() == []
        assert await store.zcard(SLOTS_KEY) == 0
        await session.close("deleted")


async def test_the_heartbeat_keeps_records_alive_and_a_dead_owners_expire_within_the_ttl(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "b", CLUSTER_MAX_SESSIONS=1) as b:
        settings = cluster_settings(redis_server, "a")
        a = ClusterRegistry(settings)
        await a.start()
        await settled(store)
        session = await live_session(settings)
        await publish(a, session, await a.reserve())
        # Longer than the TTL: only the heartbeat can have kept it.
        deadline = time.monotonic() + TTL * 2
        while time.monotonic() < deadline:
            assert await b.lookup(session.id) is not None
            await asyncio.sleep(0.2)
        with pytest.raises(TooManySessions):
            await b.reserve()

        await a.stop()  # dies: no withdrawal, no more heartbeats
        started = time.monotonic()
        while await b.lookup(session.id) is not None:
            assert time.monotonic() - started < TTL + 2, "the record outlived REGISTRY_TTL"
            await asyncio.sleep(0.1)
        assert isinstance(await b.reserve(), str), "the dead owner's slot is free"
        assert await store.zrange(SLOTS_KEY, 0, -1) != [session.id]
        await session.close("shutdown")


async def test_the_write_lock_is_exclusive_kept_by_its_holder_and_freed_by_release(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "a") as a, registry(redis_server, "b") as b:
        await settled(store)
        lease = await a.lease_master(0, on_lost=lambda: None)
        started = time.monotonic()
        with pytest.raises(UserDataLocked) as refused:
            await b.lease_master(0.5, on_lost=lambda: None)
        assert time.monotonic() - started >= 0.5
        assert refused.value.extra["timeout"] == 0.5

        # Past its own TTL, still held: the holder's heartbeat renews it.
        await asyncio.sleep(TTL * 1.5)
        assert await store.get(MASTER_LOCK_KEY) == lease.token

        await lease.release()
        assert await store.exists(MASTER_LOCK_KEY) == 0
        await b.lease_master(0, on_lost=lambda: None)


async def test_a_write_lock_that_redis_lost_is_taken_back_and_one_taken_by_another_is_reported(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "a") as a:
        await settled(store)
        lost: list[str] = []
        lease = await a.lease_master(0, on_lost=lambda: lost.append("lost"))
        await store.delete(MASTER_LOCK_KEY)  # what a restart of Redis without persistence does
        await a.beat()
        assert await store.get(MASTER_LOCK_KEY) == lease.token
        assert lost == []

        await store.set(MASTER_LOCK_KEY, "another-holder")
        await a.beat()
        assert lost == ["lost"]
        await lease.release()
        assert await store.get(MASTER_LOCK_KEY) == "another-holder", "release frees only its own lock"


async def test_an_outage_answers_at_once_and_the_registry_recovers_without_a_restart(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "a") as a:
        await settled(store)
        session = await live_session(cluster_settings(redis_server, "a"))
        await publish(a, session, await a.reserve())
        assert await a.check() == "ok"

        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as unavailable:
            await a.reserve()
        assert time.monotonic() - started < 3
        assert (
            unavailable.value.details
            == f"redis at 127.0.0.1:{redis_server.port} is unreachable (ConnectionError)"
        )
        assert await a.check() == unavailable.value.details
        with pytest.raises(RegistryUnavailable):
            await a.lookup(session.id)

        redis_server.start()  # empty: what A serves must come back by itself
        deadline = time.monotonic() + 15
        while await a.check() != "ok" or await a.lookup(session.id) is None:
            assert time.monotonic() < deadline, "the registry did not recover"
            await asyncio.sleep(0.1)
        await settled(store)  # an empty Redis: it grants again after REGISTRY_TTL
        assert isinstance(await a.reserve(), str)
        await session.close("deleted")


# --- data loss -------------------------------------------------------------------------------------------


async def test_after_a_data_loss_nothing_is_granted_until_every_instance_could_republish_its_share(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with (
        registry(redis_server, "a", CLUSTER_MAX_SESSIONS=3) as a,
        registry(redis_server, "b", CLUSTER_MAX_SESSIONS=3) as b,
    ):
        await settled(store)
        on_a = await live_session(cluster_settings(redis_server, "a"))
        await publish(a, on_a, await a.reserve())
        starting_on_b = await b.reserve()

        await store.flushall()
        started = time.monotonic()
        with pytest.raises(TooManySessions) as refused:
            await a.reserve()
        assert "re-publishing" in str(refused.value.details)
        assert 1 <= refused.value.retry_after <= TTL
        # A noticed the loss, and put its own share back before answering.
        assert await store.zrange(SLOTS_KEY, 0, -1) == [on_a.id]
        assert await store.exists(record_key(on_a.id)) == 1
        with pytest.raises(TooManySessions):
            await b.reserve()
        assert sorted(await store.zrange(SLOTS_KEY, 0, -1)) == sorted([on_a.id, starting_on_b])

        # Refused for REGISTRY_TTL from the loss: the time within which every live instance beats.
        waited = await settled(store)
        assert TTL - 0.5 <= time.monotonic() - started <= TTL + 2, waited
        assert await store.zcard(SLOTS_KEY) == 2, "nothing granted while recovering"
        assert isinstance(await b.reserve(), str)
        with pytest.raises(TooManySessions) as full:
            await a.reserve()
        assert "CLUSTER_MAX_SESSIONS" in str(full.value.details)
        assert "re-publishing" not in str(full.value.details)
        await on_a.close("deleted")


async def test_the_heartbeat_alone_notices_a_loss_and_republishes_within_its_interval(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "a", CLUSTER_MAX_SESSIONS=2) as a:
        await settled(store)
        session = await live_session(cluster_settings(redis_server, "a"))
        await publish(a, session, await a.reserve())
        await store.flushall()
        started = time.monotonic()
        while await store.exists(record_key(session.id)) == 0:
            assert time.monotonic() - started < TTL, "not republished within a heartbeat"
            await asyncio.sleep(0.05)
        assert await store.zrange(SLOTS_KEY, 0, -1) == [session.id]
        assert await store.exists(RECOVERY_KEY) == 1
        await session.close("deleted")


async def test_without_a_cluster_cap_a_data_loss_delays_no_session(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "a") as a:
        await store.flushall()
        member = await a.reserve()
        assert await store.exists(RECOVERY_KEY) == 1
        assert await store.zrange(SLOTS_KEY, 0, -1) == [member]


async def test_a_write_lock_is_not_granted_while_its_holder_may_not_have_taken_it_back(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "a") as a, registry(redis_server, "b") as b:
        await settled(store)
        lease = await a.lease_master(0, on_lost=lambda: None)
        await store.flushall()
        with pytest.raises(UserDataLocked) as refused:
            await b.lease_master(0.3, on_lost=lambda: None)
        assert "lost its data" in str(refused.value.details)
        await a.beat()
        assert await store.get(MASTER_LOCK_KEY) == lease.token, "the holder took it back"
        await settled(store)
        with pytest.raises(UserDataLocked) as held:
            await b.lease_master(0, on_lost=lambda: None)
        assert "another instance" in str(held.value.details)


async def test_a_nonce_is_claimed_once_across_instances_and_forgotten_after_its_ttl(
    redis_server: RedisServer, store: redis.asyncio.Redis
) -> None:
    async with registry(redis_server, "a") as a, registry(redis_server, "b") as b:
        nonce = "0123456789abcdef0123456789abcdef"
        assert await a.claim_nonce(nonce, 40) is True
        assert await b.claim_nonce(nonce, 40) is False
        assert await a.claim_nonce(nonce, 40) is False
        assert 39_000 < await store.pttl(nonce_key(nonce)) <= 40_000


def test_cluster_mode_refuses_to_start_without_keys_every_instance_shares() -> None:
    with pytest.raises(ValidationError) as refused:
        settings_for_test(REDIS_URL="redis://127.0.0.1:6379/0")
    assert [problem["loc"] for problem in refused.value.errors()] == [("REDIS_URL",)]
    assert "API_KEYS" in refused.value.errors()[0]["msg"]
    assert settings_for_test(REDIS_URL="redis://127.0.0.1:6379/0", AUTH_DISABLED=True).REDIS_URL is not None


def test_instance_url_defaults_to_host_and_port_and_refuses_what_is_not_http() -> None:
    assert settings_for_test(HOST="10.1.2.3", PORT=5999).INSTANCE_URL == "http://10.1.2.3:5999"
    assert settings_for_test(INSTANCE_URL="http://10.0.0.7:5681/").INSTANCE_URL == "http://10.0.0.7:5681"
    with pytest.raises(ValidationError):
        settings_for_test(INSTANCE_URL="10.0.0.7:5681")
    # The password never shows in the settings' text.
    assert "s3cret" not in repr(settings_for_test(REDIS_URL="redis://:s3cret@redis:6379/0", API_KEYS=["k"]))
