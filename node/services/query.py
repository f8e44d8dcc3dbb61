"""The request/response mode (接口服务): keyed queries and claim verification (核验).

``query_records``: a consumer with a live (copy) grant asks for the current record of up to 100 keys and
gets each masked exactly as relay and pull mask it (``security.masking.masker`` of the grant), or
NOT_FOUND for that key alone. ``verify_claim``: a consumer with a live verification grant asserts item
values for one key and gets MATCH / MISMATCH / NO_RECORD per item — never a stored value — in a verdict
signed by the node; each verification counts against the grant's daily quota in the transaction that
answers it. Keys are looked up by their keyed hash (the current-record index); the audit entry of each
call (the interceptor's, with the detail set here) names the resource, the grant, the number of keys and
the keys' hashes, never a clear identifier.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from catalog import claims as rules
from catalog.claims import Answer, Claim, LicenceState
from catalog.errors import FieldProblem, IllegalTransition, InvalidField, NotFound
from catalog.lists import BEIJING, Grant, GrantKind
from catalog.model import Item, ResourceMetadata, ResourceStatus
from node.services.caches import GenerationCache
from node.services.errors import QuotaExhausted
from node.services.lists import ListsApplication
from node.services.quota import QuotaLedger
from node.storage.record_index_repository import AskingState, CurrentRecord
from node.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from security import verdicts
from security.identity import Principal
from security.keyed_hash import KeyHasher
from security.keys import SigningKey
from security.masking import masker
from security.policy import Action, PermissionDenied, Policy, Target
from security.sealing import ConsumerKey, seal_to, sealing_context

Clock = Callable[[], dt.datetime]
AUDIT_HASH_CHARS = 16
"""The audit entry names each key by the first 16 hex digits (64 bits) of its keyed hash: 100 of them fit
the entry's detail, and 64 bits of an HMAC still name one key among any node's records."""


@dataclass(frozen=True)
class KeyAnswer:
    index: int
    key_hash: str
    found: bool
    record_id: str = ""
    sequence: int = 0
    payload: dict[str, Any] = field(default_factory=dict)
    """The granted items, masked per the grant (empty when sealed)."""
    disputed: bool = False
    """校核纠错: the record is under an open objection (served marked, as relay and pull mark it)."""
    sealed: bytes = b""
    """The payload's JSON sealed to the consumer's key (``QueryAnswer.sealing``)."""


@dataclass(frozen=True)
class QueryAnswer:
    resource_code: str
    grant_id: str
    answers: list[KeyAnswer]
    answered_by: str = ""
    """The node that answered, when it was another (the grant and the key hashes are that node's)."""
    sealing: dict[str, str] = field(default_factory=dict)
    """The sealing headers (security/sealing.py) when the payloads are sealed to the consumer's key."""
    request_id: str = ""
    """What the sealing is bound to: context ``query <request_id>``."""

    def audit_detail(self) -> str:
        found = sum(1 for a in self.answers if a.found)
        hashes = ",".join(a.key_hash[:AUDIT_HASH_CHARS] for a in self.answers)
        return (f"grant {self.grant_id}; {len(self.answers)} keys, {found} found; key hashes {hashes}"
                + (f"; answered by node {self.answered_by}" if self.answered_by else "")
                + (f"; sealed to key {self.sealing.get('x-exnode-enc-kid', '')}" if self.sealing else ""))


@dataclass(frozen=True)
class VerifyRequest:
    resource_code: str
    key: Mapping[str, str]
    claims: Sequence[Claim]
    request_id: str


@dataclass(frozen=True)
class VerifyAnswer:
    verdict: verdicts.SignedVerdict
    request: dict[str, Any]
    """The request document the verdict's hash covers (the caller's own data: it may keep it beside the
    verdict as evidence)."""
    grant: Grant
    used_today: int
    answered_by: str = ""
    """The node that answered, when it was another (the verdict is that node's)."""
    sealing: dict[str, str] = field(default_factory=dict)
    sealed: bytes = b""
    """The verdict file (verdict, signature, request) sealed to the consumer's key, when it registered one."""
    request_id: str = ""
    request_bytes: bytes = field(default=b"", compare=False, repr=False)
    """``verdicts.canonical(request)`` when this node hashed it: the response carries those very bytes."""

    @property
    def answers(self) -> list[tuple[str, Answer]]:
        return [(a["item"], Answer(a["result"])) for a in self.verdict.document["answers"]]

    def audit_detail(self) -> str:
        results = ", ".join(f"{item}={result.value}" for item, result in self.answers)
        state = self.verdict.document.get("state") or ""
        return (f"grant {self.grant.id}; 1 key, hash {self.verdict.document['subject'][:AUDIT_HASH_CHARS]}; "
                f"{results}" + (f"; state {state}" if state else "")
                + f"; {self.used_today}/{self.grant.daily_quota} today"
                + (f"; answered by node {self.answered_by}" if self.answered_by else "")
                + (f"; sealed to key {self.sealing.get('x-exnode-enc-kid', '')}" if self.sealing else ""))


@dataclass(frozen=True)
class _Counting:
    """A verification answered, signed and prepared, waiting for its count: ``take`` is the arguments of
    ``QuotaLedger.take`` (grant, day, quota, mismatches, what commits with the count)."""

    answer: VerifyAnswer
    resets: dt.datetime
    take: tuple[str, str, int, int, Callable[[UnitOfWork, int], Any] | None]

    def counted(self, used: int | None) -> VerifyAnswer:
        """The answer with its count; the quota's refusal when nothing was counted (the answer is dropped)."""
        if used is None:
            grant = self.answer.grant
            raise QuotaExhausted(
                f"verification grant {grant.id}: the daily quota of {grant.daily_quota} verifications is used "
                f"up; it resets at {self.resets:%Y-%m-%d %H:%M} Beijing time "
                f"({self.resets.astimezone(dt.UTC):%H:%M} UTC)")
        return replace(self.answer, used_today=used)


LOOP_KEYS = 20
"""A QueryRecords call of at most this many keys is answered on the event loop (about 50 µs a key)."""
QUERY_AAD = "key {index}"
VERDICT_AAD = "verdict"


def query_context(request_id: str, kid: str) -> str:
    """What a query answer's sealing is bound to (HPKE's info)."""
    return sealing_context(f"query {request_id}", kid)


def verdict_context(request_id: str, kid: str) -> str:
    return sealing_context(f"verdict {request_id}", kid)


def seal_payloads(answers: Sequence[KeyAnswer], key: ConsumerKey, request_id: str
                  ) -> tuple[list[KeyAnswer], dict[str, str]]:
    """Each found record's payload sealed to ``key`` (one KEM operation, one AEAD per record)."""
    seal = seal_to(key, query_context(request_id, key.kid))
    return [replace(a, payload={}, sealed=seal.seal(QUERY_AAD.format(index=a.index), json.dumps(
        a.payload, ensure_ascii=False).encode())) if a.found else a for a in answers], seal.headers


def _is_local(principal: Principal) -> bool:
    """A caller of this node's gRPC port (not another node asking for one of its callers)."""
    return not principal.issuer.startswith("node:")


def _beijing_day(now: dt.datetime) -> tuple[str, dt.datetime]:
    """The quota's day (Beijing) and when the next one starts."""
    local = now.astimezone(BEIJING)
    start = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), BEIJING)
    return local.date().isoformat(), start


class QueryApplication:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy, lists: ListsApplication,
                 hasher: KeyHasher, signer: SigningKey, node_id: str) -> None:
        self.uow = uow
        self.clock = clock
        self.policy = policy
        self.lists = lists
        self.hasher = hasher
        self.signer = signer
        self.node_id = node_id
        self.quota = QuotaLedger(uow)
        self._metadata: dict[tuple[str, int], tuple[ResourceMetadata, str]] = {}
        self._consumer_keys: GenerationCache[ConsumerKey | None] = GenerationCache()
        self._latest: dict[str, tuple[int, tuple[Item, ...]]] = {}
        """Per local resource, the last published version seen and its key items: a verification hashes
        its key with them and reads the record in its first statement (``_read_subject``)."""
        self.reads_in_process = False
        """The database is a file this process reads (SQLite): a verification's read, and a short query's,
        run on the event loop. Over a network (PostgreSQL) a read is round trips the loop would sit through,
        one call after another, so it runs in a thread, where the calls' reads overlap."""
        self.stamp_verdicts = False
        """Queue each signed verdict for a trusted timestamp (a node with ``tsa.url``); the asker fetches the
        evidence later (``exnode verdict stamp``) to keep beside the verdict."""
        self.remote: Any = None
        """``node.services.remote.RemoteQueries`` when the node talks to others over RabbitMQ: claims about a
        resource another node holds (its ``origin_node``) are asked of that node."""

    # -- QueryRecords ---------------------------------------------------------------------------------------
    def query_records(self, principal: Principal, resource_code: str, keys: Sequence[Mapping[str, str]],
                      request_id: str = "", seal_key: ConsumerKey | None = None) -> QueryAnswer:
        """The current record of each key, masked per the caller's live grant; NOT_FOUND per key. The
        payloads are sealed to ``seal_key``, or, for a caller of this node, to the key its department
        registered here (none: in clear, as relay does)."""
        answer = self._query_here(principal, resource_code, keys, request_id, seal_key)
        if isinstance(answer, QueryAnswer):
            return answer
        return self._query_routed(principal, *answer, resource_code, keys, seal_key)

    async def query_records_async(self, principal: Principal, resource_code: str,
                                  keys: Sequence[Mapping[str, str]], request_id: str = "") -> QueryAnswer:
        """``query_records`` for a caller of the gRPC port, on the event loop when the work is short (SQLite,
        at most LOOP_KEYS keys: one read, a mask per record): a thread per call cost more than that work
        (``verify_claim_async``). More keys, a database over the network, or a resource another node holds
        (a round trip over the broker) run in a thread."""
        if len(keys) > LOOP_KEYS or not self.reads_in_process:
            return await asyncio.to_thread(self.query_records, principal, resource_code, keys, request_id)
        answer = self._query_here(principal, resource_code, keys, request_id, None)
        if isinstance(answer, QueryAnswer):
            return answer
        return await asyncio.to_thread(self._query_routed, principal, *answer, resource_code, keys, None)

    def _query_routed(self, principal: Principal, origin: str, meta: ResourceMetadata, resource_code: str,
                      keys: Sequence[Mapping[str, str]], seal_key: ConsumerKey | None) -> QueryAnswer:
        """Keys of a resource node ``origin`` holds: its grants and masking; it seals the records, so the
        broker between carries none in clear."""
        if self.remote is None:
            raise IllegalTransition("FOREIGN", "query", f"{resource_code} is held by node {origin}: this node "
                                    "does not talk to other nodes (no RPC over RabbitMQ)", what="resource")
        self._check_count(keys)
        self._hashes(meta, keys)  # a malformed key is refused here, before it travels
        if seal_key is None and _is_local(principal):
            seal_key = self.consumer_key(principal.department_code)
        return self.remote.query_records(principal, origin, resource_code, keys, seal_key,
                                         via=self.next_hop(resource_code))

    def _query_here(self, principal: Principal, resource_code: str, keys: Sequence[Mapping[str, str]],
                    request_id: str, seal_key: ConsumerKey | None) -> QueryAnswer | tuple[str, ResourceMetadata]:
        """The answer when this node holds the resource; else (its origin node, the published metadata)."""
        request_id = request_id or uuid.uuid4().hex
        if not resource_code:
            raise InvalidField.one("resource_code", "is required")
        with self.uow() as uow:  # one read: the counters, the grant (cached), the records, the caller's key
            asking = uow.record_index.asking_state(resource_code)
            meta, origin = self._published_in(uow, resource_code, asking.published_version, known=True)
            if not origin:
                grant = self.lists.live_grant(principal, resource_code, Action.RECORDS_QUERY,
                                              grants=self.lists.grants_at(uow, asking.grants_generation))
                self._check_count(keys)
                hashes = self._hashes(meta, keys)
                found = uow.record_index.current(resource_code, hashes)
                if seal_key is None and _is_local(principal):
                    seal_key = self._consumer_key_in(uow, asking.consumer_keys_generation, principal.department_code)
        if origin:
            return origin, meta
        mask = masker(grant.items, grant.masking)
        answers = []
        for index, digest in enumerate(hashes):
            record = found.get(digest)
            if record is None:
                answers.append(KeyAnswer(index, digest, False))
            else:
                answers.append(KeyAnswer(index, digest, True, record.record_id, record.sequence,
                                         mask(json.loads(record.payload)), record.disputed))
        if seal_key is None:
            return QueryAnswer(resource_code, grant.id, answers, request_id=request_id)
        sealed, headers = seal_payloads(answers, seal_key, request_id)
        return QueryAnswer(resource_code, grant.id, sealed, sealing=headers, request_id=request_id)

    def next_hop(self, resource_code: str) -> str:
        """The node a request about another node's resource is sent to: the lower node its entry came
        through (the origin itself when that is a direct neighbour)."""
        with self.uow() as uow:
            return uow.catalog.route(resource_code)[1]

    def consumer_key(self, department_code: str) -> ConsumerKey | None:
        """The department's newest live encryption key here, what its answers are sealed to."""
        with self.uow() as uow:
            return self._consumer_key_in(uow, None, department_code)

    def _consumer_key_in(self, uow: UnitOfWork, generation: int | None, department_code: str
                         ) -> ConsumerKey | None:
        """The key through the cache at the counter the request read in ``uow`` (``node.services.caches``):
        a revoked or newly registered key changes the counter, so the next request reads it again."""
        def load() -> ConsumerKey | None:
            stored = uow.exchange.consumer_key(department_code)
            return ConsumerKey(stored.kid, stored.algorithm, stored.public_pem) if stored else None

        return self._consumer_keys.get(department_code, generation, load)

    @staticmethod
    def _check_count(keys: Sequence[Mapping[str, str]]) -> None:
        if not keys:
            raise InvalidField.one("keys", "give at least one key")
        if len(keys) > rules.MAX_KEYS:
            raise InvalidField.one("keys", f"{len(keys)} keys, at most {rules.MAX_KEYS} per call")

    def _hashes(self, meta: ResourceMetadata, keys: Sequence[Mapping[str, str]]) -> list[str]:
        problems: list[FieldProblem] = []
        hashes = []
        for index, key in enumerate(keys):
            try:
                hashes.append(self.hasher(rules.parse_key(meta.key_items, key, f"keys[{index}]")))
            except InvalidField as error:
                problems.extend(error.problems)
        if problems:
            raise InvalidField(problems)
        return hashes

    def _published(self, resource_code: str) -> ResourceMetadata:
        return self._published_entry(resource_code)[0]

    def _published_entry(self, resource_code: str) -> tuple[ResourceMetadata, str]:
        """The published metadata and the node that holds the records ("" for this one)."""
        if not resource_code:
            raise InvalidField.one("resource_code", "is required")
        with self.uow() as uow:
            return self._published_in(uow, resource_code)

    def _published_in(self, uow: UnitOfWork, resource_code: str, published: int | None = None,
                      known: bool = False) -> tuple[ResourceMetadata, str]:
        """``known``: ``published`` was read in ``uow`` already (``asking_state``)."""
        if not known:
            published = uow.record_index.published_version(resource_code)
        cached = self._metadata.get((resource_code, published)) if published is not None else None
        if cached is not None:  # a published version never changes: one cheap read, not the resource
            if not cached[1] and published is not None:
                if len(self._latest) >= 1024:
                    self._latest.clear()
                self._latest[resource_code] = (published, cached[0].key_items)
            return cached
        resource = uow.catalog.get(resource_code)
        if resource is None:
            raise NotFound("resource", resource_code)
        if resource.status is not ResourceStatus.PUBLISHED or resource.published_version is None:
            raise IllegalTransition(resource.status.value, "query",
                                    f"{resource_code} is {resource.status.value}: only a published resource "
                                    "answers queries", what="resource")
        version = uow.catalog.get_version(resource_code, resource.published_version)
        assert version is not None
        if len(self._metadata) >= 1024:
            self._metadata.clear()
        self._metadata[(resource_code, resource.published_version)] = (version.metadata, resource.origin_node)
        return version.metadata, resource.origin_node

    # -- VerifyClaim ----------------------------------------------------------------------------------------
    def verify_claim(self, principal: Principal, request: VerifyRequest,
                     then: Callable[[UnitOfWork, VerifyAnswer], Any] | None = None,
                     prepare: Callable[[VerifyAnswer], Any] | None = None) -> VerifyAnswer:
        """MATCH / MISMATCH / NO_RECORD per asserted item, in a verdict signed by the node. ``then`` writes
        what must commit with the quota's count (a remote request's stored answer, a call's audit entry):
        both or neither. ``prepare`` builds what the caller will send from the answer before anything is
        counted (a gRPC response): if it fails, nothing is counted and ``then`` never runs, so no OK entry
        is committed for a call that then fails."""
        return self._verify(principal, request, then, prepare)

    def _verify(self, principal: Principal, request: VerifyRequest,
                then: Callable[[UnitOfWork, VerifyAnswer], Any] | None,
                prepare: Callable[[VerifyAnswer], Any] | None) -> VerifyAnswer:
        step = self._verify_until_count(principal, request, then, prepare)
        if isinstance(step, str):
            return self._verify_routed(principal, step, request)
        return step.counted(self.quota.take(*step.take))

    async def verify_claim_async(self, principal: Principal, request: VerifyRequest,
                                 then: Callable[[UnitOfWork, VerifyAnswer], Any] | None = None,
                                 prepare: Callable[[VerifyAnswer], Any] | None = None) -> VerifyAnswer:
        """``verify_claim`` for the gRPC servicer. On SQLite (``reads_in_process``) on the event loop: the work
        before the count is one read statement, a signature and the response, well under a millisecond, and
        the wait for the count's commit is the writer's loop future; a thread per call cost more than all of
        it (2.2 ms of CPU a call at 32 callers, 58 context switches: threads taking turns at the GIL). On
        PostgreSQL the whole verification runs in a thread as before: the read's round trips would queue on
        the loop one call after another, and the read in a thread with the wait on the loop measured no
        better (254-297/s against 223-407/s in alternating runs). A routed verification runs in a thread."""
        if not self.reads_in_process:
            return await asyncio.to_thread(self._verify, principal, request, then, prepare)
        step = self._verify_until_count(principal, request, then, prepare)
        if isinstance(step, str):
            return await asyncio.to_thread(self._verify_routed, principal, step, request)
        return step.counted(await self.quota.take_async(*step.take))

    def _verify_routed(self, principal: Principal, origin: str, request: VerifyRequest) -> VerifyAnswer:
        """A claim about a resource node ``origin`` holds: its grants, quota and signature."""
        answer = self.remote.verify_claim(principal, origin, request, via=self.next_hop(request.resource_code))
        key = self.consumer_key(principal.department_code) if _is_local(principal) else None
        return self._sealed(answer, key)

    def _verify_until_count(self, principal: Principal, request: VerifyRequest,
                            then: Callable[[UnitOfWork, VerifyAnswer], Any] | None,
                            prepare: Callable[[VerifyAnswer], Any] | None) -> _Counting | str:
        """Everything of a verification before its count: the answer signed and prepared, with what the
        count takes (``_Counting``); or the origin node's id when another node answers it."""
        if not request.resource_code:
            raise InvalidField.one("resource_code", "is required")
        with self.uow() as uow:
            # one read: the counters and published version in one statement, the grant and the caller's key
            # from the caches at those counters, the key's record (when it parses)
            guessed, asking, record = self._read_subject(uow, request)
            meta, origin = self._published_in(uow, request.resource_code, asking.published_version, known=True)
            prefetched: tuple[str, CurrentRecord | None, ConsumerKey | None] | None = None
            if not origin or self.remote is None:
                grant = self.lists.live_grant(principal, request.resource_code, Action.RECORDS_VERIFY,
                                              GrantKind.VERIFY, self.lists.grants_at(uow, asking.grants_generation))
                try:
                    # the guess hashed the key under this very version's key items (``_read_subject``)
                    digest = guessed or self.hasher(rules.parse_key(meta.key_items, request.key, "key"))
                except InvalidField:
                    pass  # refused below, after the grant, in the order the checks have always had
                else:
                    if digest != guessed:  # the version changed (or was not known): read the record now
                        record = uow.record_index.current(request.resource_code, [digest]).get(digest)
                    key = self._consumer_key_in(uow, asking.consumer_keys_generation, principal.department_code) \
                        if _is_local(principal) else None
                    prefetched = digest, record, key
        if origin and self.remote is not None:
            return origin
        problems: list[FieldProblem] = []
        if prefetched is None:  # the key did not parse above: its problems, beside the claims'
            try:
                rules.parse_key(meta.key_items, request.key, "key")
            except InvalidField as error:
                problems.extend(error.problems)
        try:
            rules.check_claims(meta.items, request.claims, grant.items)
        except InvalidField as error:
            problems.extend(error.problems)
        if problems:
            raise InvalidField(problems)
        outside = [c.item for c in request.claims if c.item not in grant.items]
        if outside:
            raise PermissionDenied(Action.RECORDS_VERIFY, Target("resource", request.resource_code),
                                   f"verification grant {grant.id} does not let department "
                                   f"{principal.department_code} assert {', '.join(outside)} (it may assert: "
                                   f"{', '.join(grant.items)})")
        assert prefetched is not None  # the key parsed in the read above, as it did here
        digest, record, seal_key = prefetched
        now = self.clock()
        day, resets = _beijing_day(now)
        by_name = {item.name: item for item in meta.items}
        disputed = record is not None and record.disputed
        payload = json.loads(record.payload) if record is not None else None
        answers = [(c.item, rules.answer(by_name[c.item], c.value, payload.get(c.item)) if payload is not None
                    else Answer.NO_RECORD) for c in request.claims]
        state: LicenceState | None = None
        if payload is not None:
            state = rules.licence_state(meta.items, payload, now.astimezone(BEIJING).date())
        asked = verdicts.request_document(
            resource_code=request.resource_code, consumer_code=principal.department_code, key=request.key,
            claims=[(c.item, c.value) for c in request.claims], request_id=request.request_id)
        asked_bytes = verdicts.canonical(asked)  # hashed here, sent as is in the response (``request_hash``)
        document = {
            "node": self.node_id, "at": now.astimezone(dt.UTC).isoformat(timespec="milliseconds"),
            "request_id": request.request_id, "request_hash": hashlib.sha256(asked_bytes).hexdigest(),
            "resource": request.resource_code, "consumer": principal.department_code, "grant": grant.id,
            "purpose": grant.purpose, "legal_basis": grant.legal_basis, "subject": digest,
            "answers": [{"item": item, "result": result.value} for item, result in answers],
            "state": state.value if state else "",
            "disputed": disputed,
        }
        # signed before it is counted (outside the commit the count waits for); dropped if the quota refuses
        signed = verdicts.sign(document, self.signer)
        stamp = self.stamp_verdicts
        sealed = self._sealed(VerifyAnswer(signed, asked, grant, 0, request_bytes=asked_bytes), seal_key)
        if prepare is not None:
            prepare(sealed)

        def with_count(uow: UnitOfWork, used: int) -> None:
            """What commits with the count or not at all (the TSA's worker stamps the verdict later)."""
            if stamp:
                uow.timestamps.add_pending("verdict", signed.digest.hex(), signed.digest, now)
            if then is not None:
                then(uow, replace(sealed, used_today=used))

        return _Counting(sealed, resets, (grant.id, day, grant.daily_quota,
                                          sum(1 for _, a in answers if a is Answer.MISMATCH),
                                          with_count if stamp or then is not None else None))

    @staticmethod
    def _sealed(answer: VerifyAnswer, key: ConsumerKey | None) -> VerifyAnswer:
        """The verdict file sealed to ``key`` (the request in it holds the asserted values and the key)."""
        if key is None:
            return answer
        request_id = str(answer.verdict.document.get("request_id") or uuid.uuid4().hex)
        seal = seal_to(key, verdict_context(request_id, key.kid))
        body = json.dumps(answer.verdict.file(answer.request), ensure_ascii=False).encode()
        return replace(answer, sealing=seal.headers, sealed=seal.seal(VERDICT_AAD, body), request_id=request_id)

    def _read_subject(self, uow: UnitOfWork, request: VerifyRequest
                      ) -> tuple[str, AskingState, CurrentRecord | None]:
        """The first statement of a verification: the counters and published version, and — when the key
        parses under the last published version seen here — the key's record beside them (its keyed hash is
        returned; "" when the record was not read). The caller checks that the version is still that one."""
        latest = self._latest.get(request.resource_code)
        if latest is not None:
            version, key_items = latest
            try:
                digest = self.hasher(rules.parse_key(key_items, request.key, "key"))
            except InvalidField:
                pass
            else:
                asking, record = uow.record_index.asking_state_and_current(request.resource_code, digest)
                if asking.published_version == version:
                    return digest, asking, record
                return "", asking, None
        return "", uow.record_index.asking_state(request.resource_code), None

    def usage(self, grant_id: str, now: dt.datetime | None = None) -> tuple[int, int]:
        """(verifications, mismatches) of a grant today (tests and the console)."""
        day, _ = _beijing_day(now or self.clock())
        with self.uow() as uow:
            return uow.verifications.usage(grant_id, day)

