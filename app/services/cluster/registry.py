"""The cluster's registry in Redis (SPEC §10): session records, the cluster cap, write mode's lock.

Keys (the prefix keeps them apart from anything else in the database):

- `tiktok:slots`: a sorted set with one member per session live or starting anywhere in the cluster
  (its id, or `starting:<uuid>` while it is being opened), scored by when it expires. Its size is what
  CLUSTER_MAX_SESSIONS caps: one script purges the expired members and adds the new one, so a burst
  spread over every instance can never pass the cap. It is also the index the cluster list reads.
- `tiktok:session:<id>`: the session's record (owner, token, what GET shows), expiring after
  REGISTRY_TTL.
- `tiktok:lock:master:<account>`: write mode's cluster-wide lock, a random holder token expiring after
  REGISTRY_TTL.
- `tiktok:generation`: the registry's generation, a random id without expiry; `tiktok:recovering`: set
  beside a new generation, expiring after REGISTRY_TTL.
- `tiktok:nonce:<nonce>`: a request signature between instances that was used (app.api.forwarding).

The owner's heartbeat (every REGISTRY_TTL / 3) pushes all of its expiries forward and rewrites its
records with fresh info, so a dead owner's sessions leave the list and free their slots within
REGISTRY_TTL, and its lock frees itself. While Redis is unreachable every call raises
`RegistryUnavailable` at once (no retry loop inside a request) and the heartbeat tries every second;
when Redis answers again the heartbeat puts back what this instance still serves.

When Redis loses its data (FLUSHALL, a restart or a failover to an empty replica), the slots of every
instance are gone at once and come back only as each instance notices; counting meanwhile would grant
sessions over CLUSTER_MAX_SESSIONS. So the generation key goes with the data, and whoever runs a script
next finds it missing: a new generation starts with the recovery marker, and while the marker lives no
slot and no write lock is granted (429 with Retry-After, or waiting for the lock). Each instance notices on
its next reservation or heartbeat (its generation is no longer Redis's) and republishes all it holds at
once. The marker lasts REGISTRY_TTL because that is what the registry promises anyway: a live instance
refreshes its share within REGISTRY_TTL, or its sessions expire. Waiting for a list of the live instances
instead would not be shorter: that list is lost with the data too, and its members are known only after
REGISTRY_TTL. A brand-new Redis cannot be told from one that lost its data, so a new cluster waits the
same REGISTRY_TTL before its first session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.core.config import Settings
from app.core.errors import RegistryUnavailable, TooManySessions, UserDataLocked
from app.schemas.tiktok import SessionInfo
from app.services.cluster import scripts
from app.services.common.access import Scope

logger = logging.getLogger(__name__)

T = TypeVar("T")

PREFIX = "tiktok:"
SLOTS_KEY = PREFIX + "slots"
MASTER_LOCK_KEY = PREFIX + "lock:master"
GENERATION_KEY = PREFIX + "generation"
RECOVERY_KEY = PREFIX + "recovering"
# What the generation-aware scripts take first (scripts._GENERATION).
_GENERATION_KEYS = [GENERATION_KEY, RECOVERY_KEY]


def master_lock_key(account: str) -> str:
    """Each account's write lock is its own (SPEC §12): a writer of one account never blocks another."""
    return f"{MASTER_LOCK_KEY}:{account}"


STARTING = "starting:"

# Redis beside the instances answers in well under a millisecond: a second without an answer is an outage,
# and a request must learn it in about that time, not after a client's default retry loop.
REDIS_TIMEOUT = 1.0
# While Redis is unreachable the heartbeat tries this often, so a recovery is noticed at once.
OUTAGE_RETRY = 1.0
# An ending session waits at most this long for a heartbeat in flight; the heartbeat removes it otherwise.
WITHDRAW_WAIT = 1.0
LOCK_POLL_FIRST = 0.05
LOCK_POLL_MAX = 0.5


def record_key(session_id: str) -> str:
    return f"{PREFIX}session:{session_id}"


def nonce_key(nonce: str) -> str:
    return f"{PREFIX}nonce:{nonce}"


class Reservation(IntEnum):
    """What the RESERVE script answers."""

    GRANTED = 1
    FULL = 0
    REPUBLISH_FIRST = -1
    RECOVERING = -2


class LockGrant(IntEnum):
    """What the ACQUIRE script answers."""

    TAKEN = 1
    HELD = 0
    RECOVERING = -1


def redis_address(url: str) -> str:
    """Where Redis is, for logs and /ready: host and port (or socket path), never the password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname}:{parts.port or 6379}"


@dataclass(frozen=True)
class SessionRecord:
    """A live session as the registry holds it: enough to list it, describe it and reach its owner."""

    id: str
    # Read by the instance a client reached, to build the session's links and to turn a wrong token
    # away before a WebSocket upgrade; the owner checks it again on every forwarded request.
    token: str
    owner_id: str
    owner_url: str
    details: dict[str, Any]
    state: Literal["live"] = "live"
    # The view-only token of the session's `view_url`; view links minted later are known to the owner.
    view_token: str = ""

    def info(self) -> SessionInfo:
        return SessionInfo.model_validate(self.details)

    def scope_of(self, token: str | None) -> Scope | None:
        if not token:
            return None
        candidate = token.encode()
        if hmac.compare_digest(candidate, self.token.encode()):
            return Scope.CONTROL
        if self.view_token and hmac.compare_digest(candidate, self.view_token.encode()):
            return Scope.VIEW
        return None

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "token": self.token,
                "owner_id": self.owner_id,
                "owner_url": self.owner_url,
                "info": self.details,
                "view_token": self.view_token,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> SessionRecord:
        data = json.loads(raw)
        return cls(
            data["id"],
            data["token"],
            data["owner_id"],
            data["owner_url"],
            data["info"],
            view_token=data.get("view_token", ""),
        )


class MasterLease:
    """Write mode's hold on the account, cluster-wide: the heartbeat keeps it, `release` frees it."""

    def __init__(self, registry: ClusterRegistry, token: str, on_lost: Callable[[], None], key: str):
        self._registry = registry
        self.key = key
        self.token = token
        self.on_lost = on_lost
        self.released = False

    async def release(self) -> None:
        if not self.released:
            self.released = True
            await self._registry.release_lease(self)


class ClusterRegistry:
    """One instance's view of the cluster: what it owns, written to Redis, and what the others own."""

    def __init__(self, settings: Settings) -> None:
        if settings.REDIS_URL is None:
            raise ValueError("ClusterRegistry needs REDIS_URL")
        url = settings.REDIS_URL.get_secret_value()
        # A restarted instance at the same URL is a new owner: its predecessor's sessions died with it.
        self.instance_id = uuid.uuid4().hex
        self.instance_url = settings.INSTANCE_URL
        self.limit = settings.CLUSTER_MAX_SESSIONS
        self.where = redis_address(url)
        self._ttl_ms = int(settings.REGISTRY_TTL * 1000)
        self._interval = settings.REGISTRY_TTL / 3
        self._redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            # One retry, at once: it reconnects a pooled connection that a Redis restart cut. redis-py's
            # default (ten, backing off) would hold every request for seconds during an outage.
            retry=Retry(NoBackoff(), 1),
        )
        self._reserve = self._redis.register_script(scripts.RESERVE)
        self._acquire = self._redis.register_script(scripts.ACQUIRE)
        self._publish = self._redis.register_script(scripts.PUBLISH)
        self._refresh = self._redis.register_script(scripts.REFRESH)
        self._renew = self._redis.register_script(scripts.RENEW)
        self._release = self._redis.register_script(scripts.RELEASE)
        # The sessions this instance published and has not withdrawn; what their records say now is read
        # from `watch`'s source at each heartbeat.
        self._owned: set[str] = set()
        self._serving: Callable[[], Iterable[SessionRecord]] = lambda: ()
        self._starting: set[str] = set()
        self._leases: set[MasterLease] = set()
        # Members whose removal failed (Redis was down); the next heartbeat removes them first.
        self._unremoved: set[str] = set()
        # Writes never overlap: a heartbeat in flight cannot put back a record that an end just removed.
        self._writes = asyncio.Lock()
        # The registry's generation under which this instance last published all it holds; None before its
        # first heartbeat. Redis's differing from it means a loss that this instance has not repaired yet.
        self._generation: str | None = None
        self._wake = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None
        # Why Redis cannot be used right now (for /ready and the 503s), None while it answers.
        self.problem: str | None = None

    # --- life ------------------------------------------------------------------------------------------

    def watch(self, records: Callable[[], Iterable[SessionRecord]]) -> None:
        """Where the heartbeat reads this instance's live sessions, as records built by their owner (the
        service): their info changes (idle expiry, login), so the registry keeps no copy of its own."""
        self._serving = records

    async def start(self) -> None:
        """Reach Redis once (an outage at start is reported by /ready, not fatal), then keep beating."""
        with contextlib.suppress(RegistryUnavailable):
            await self.beat()
        logger.info(
            "registry.started",
            extra={"redis": self.where, "instance_url": self.instance_url, "reachable": self.problem is None},
        )
        self._heartbeat = asyncio.get_running_loop().create_task(self._keep_fresh())

    async def stop(self) -> None:
        """After the sessions have ended: stop the heartbeat and close the connections."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        await self._redis.aclose()

    async def _keep_fresh(self) -> None:
        while True:
            pause = self._interval if self.problem is None else min(OUTAGE_RETRY, self._interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()
            try:
                await self.beat()
            except RegistryUnavailable:
                pass
            except Exception:
                logger.exception("registry.heartbeat_failed")

    async def beat(self) -> None:
        """One heartbeat: finish failed removals, republish every record and slot of ours, renew the lock.

        Also the repair after a data loss: everything this instance holds goes back, under the registry's
        generation (a new one if the loss is noticed here).
        """
        async with self._writes:
            if self._unremoved:
                stale = sorted(self._unremoved)
                await self._run(self._remove(stale))
                self._unremoved.difference_update(stale)
            records = [record for record in self._serving() if record.id in self._owned]
            keys = [*_GENERATION_KEYS, SLOTS_KEY, *(record_key(record.id) for record in records)]
            args: list[Any] = [self._ttl_ms, uuid.uuid4().hex, len(records)]
            args += [record.id for record in records]
            args += [record.to_json() for record in records]
            starting = sorted(self._starting)
            args += starting
            generation = await self._run(self._refresh(keys=keys, args=args))
            if self._generation is not None and generation != self._generation:
                logger.warning(
                    "registry.data_lost_republished",
                    extra={"redis": self.where, "sessions": len(records), "starting": len(starting)},
                )
            self._generation = generation
        for lease in list(self._leases):
            if not await self._run(self._renew(keys=[lease.key], args=[lease.token, self._ttl_ms])):
                self._leases.discard(lease)
                logger.error("registry.lock_lost", extra={"redis": self.where})
                lease.on_lost()

    # --- Redis calls -----------------------------------------------------------------------------------

    async def _run(self, operation: Awaitable[T]) -> T:
        try:
            result = await operation
        except (RedisError, OSError) as error:
            problem = f"redis at {self.where} is unreachable ({type(error).__name__})"
            if self.problem is None:
                logger.warning(
                    "registry.unavailable", extra={"redis": self.where, "error": type(error).__name__}
                )
            self.problem = problem
            raise RegistryUnavailable(problem) from None
        if self.problem is not None:
            logger.info("registry.recovered", extra={"redis": self.where})
            self.problem = None
            self._wake.set()  # put back at once what this instance serves (Redis may have restarted empty)
        return result

    def _remove(self, members: list[str]) -> Awaitable[list[Any]]:
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(SLOTS_KEY, *members)
        pipe.delete(*(record_key(member) for member in members))
        return pipe.execute()

    async def _drop(self, members: list[str]) -> None:
        """Remove slots (and records); never raises: what cannot be removed now, the heartbeat removes."""
        try:
            async with asyncio.timeout(WITHDRAW_WAIT), self._writes:
                await self._run(self._remove(members))
        except (RegistryUnavailable, TimeoutError):
            self._unremoved.update(members)

    # --- what the service asks -------------------------------------------------------------------------

    async def check(self) -> str:
        """For /ready: "ok", or why Redis cannot be used."""
        try:
            await self._run(self._redis.ping())
        except RegistryUnavailable as error:
            return str(error.details)
        return "ok"

    async def reserve(self) -> str:
        """A slot under CLUSTER_MAX_SESSIONS for a session about to open; 429 when the cluster is full, or
        while the count cannot be trusted after Redis lost its data."""
        member = STARTING + uuid.uuid4().hex
        # Twice at most: a loss noticed here is repaired (this instance's share put back) before the retry.
        for attempt in range(2):
            answer, _generation, recovering_ms = await self._run(
                self._reserve(
                    keys=[*_GENERATION_KEYS, SLOTS_KEY],
                    args=[
                        self._ttl_ms,
                        uuid.uuid4().hex,
                        self._generation or "",
                        member,
                        self.limit or 0,
                    ],
                )
            )
            if answer != Reservation.REPUBLISH_FIRST or attempt == 1:
                break
            await self.beat()
        if answer == Reservation.FULL:
            raise TooManySessions.cap_reached(
                self.limit or 0, "CLUSTER_MAX_SESSIONS", await self._expiries(), " in the cluster"
            )
        if answer != Reservation.GRANTED:
            wait = max(1, math.ceil((recovering_ms or self._ttl_ms) / 1000))
            raise TooManySessions(
                "the cluster registry lost its data (a Redis restart or failover) and the instances are "
                "re-publishing their sessions: until they all have, the cluster's count cannot be shown "
                f"to be under CLUSTER_MAX_SESSIONS ({self.limit}); retry in {wait} s",
                retry_after=wait,
                limit=self.limit,
            )
        # Kept fresh by the heartbeat from now on (not before: a refused member must never be written).
        self._starting.add(member)
        return member

    async def release(self, reservation: str) -> None:
        """The session did not start: its slot is free again."""
        self._starting.discard(reservation)
        await self._drop([reservation])

    async def publish(self, record: SessionRecord, reservation: str) -> None:
        """The session is live: its reservation becomes its record. Never raises (the heartbeat retries)."""
        self._owned.add(record.id)
        self._starting.discard(reservation)
        try:
            async with asyncio.timeout(WITHDRAW_WAIT), self._writes:
                await self._run(
                    self._publish(
                        keys=[SLOTS_KEY, record_key(record.id)],
                        args=[self._ttl_ms, reservation, record.id, record.to_json()],
                    )
                )
        except (RegistryUnavailable, TimeoutError):
            self._unremoved.add(reservation)
            logger.warning("registry.publish_deferred", extra={"session_id": record.id})
        if record.id not in self._owned:
            # It ended while being published, and its withdrawal may have run before the record was written.
            await self._drop([record.id])

    async def withdraw(self, session_id: str) -> None:
        """The session ended: its record and slot go (within WITHDRAW_WAIT, else by the heartbeat)."""
        self._owned.discard(session_id)
        await self._drop([session_id])

    async def lookup(self, session_id: str) -> SessionRecord | None:
        raw = await self._run(self._redis.get(record_key(session_id)))
        return SessionRecord.from_json(raw) if raw else None

    async def records(self) -> list[SessionRecord]:
        """Every live session of the cluster, oldest first."""
        members = await self._run(self._redis.zrange(SLOTS_KEY, 0, -1))
        keys = [record_key(member) for member in members if not member.startswith(STARTING)]
        raws = await self._run(self._redis.mget(keys)) if keys else []
        found = [SessionRecord.from_json(raw) for raw in raws if raw]
        return sorted(found, key=lambda record: record.details["created_at"])

    async def _expiries(self) -> list[datetime]:
        """When the cluster's live sessions end by themselves; none known while Redis cannot be read."""
        try:
            records = await self.records()
        except RegistryUnavailable:
            return []
        return [record.info().expires_at for record in records]

    async def lease_master(
        self, timeout: float, on_lost: Callable[[], None], account: str = "default"
    ) -> MasterLease:
        """The account's cluster-wide write lock, waited for up to `timeout` (LOCK_TIMEOUT), else 423."""
        token = secrets.token_hex(16)
        key = master_lock_key(account)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = LOCK_POLL_FIRST
        while (grant := await self._take_lock(key, token)) != LockGrant.TAKEN:
            remaining = deadline - loop.time()
            if remaining <= 0:
                why = (
                    "is held exclusively by a write-mode session of another instance (cluster lock)"
                    if grant == LockGrant.HELD
                    else "may still be held by an instance that has not re-published it since the cluster "
                    "registry lost its data (a Redis restart or failover)"
                )
                raise UserDataLocked(
                    f"the master profile of account {account} {why}; not free within {timeout:g} s",
                    timeout=timeout,
                    account=account,
                )
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, LOCK_POLL_MAX)
        lease = MasterLease(self, token, on_lost, key)
        self._leases.add(lease)
        return lease

    async def _take_lock(self, key: str, token: str) -> LockGrant:
        answer = await self._run(
            self._acquire(keys=[*_GENERATION_KEYS, key], args=[self._ttl_ms, uuid.uuid4().hex, token])
        )
        return LockGrant(answer)

    async def claim_nonce(self, nonce: str, ttl: float) -> bool:
        """True the first time `nonce` is claimed in the cluster within `ttl` seconds, False after."""
        return bool(await self._run(self._redis.set(nonce_key(nonce), "1", nx=True, px=int(ttl * 1000))))

    async def release_lease(self, lease: MasterLease) -> None:
        self._leases.discard(lease)
        try:
            await self._run(self._release(keys=[lease.key], args=[lease.token]))
        except RegistryUnavailable:
            # Not renewed any more: it frees itself within REGISTRY_TTL.
            logger.warning("registry.lock_release_deferred", extra={"redis": self.where})
