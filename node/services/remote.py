"""Verification and keyed queries across nodes (DESIGN.md §13): a claim or a query about a resource another
node of the hierarchy holds (its entry here is read-only, ``origin_node``) is asked of that node over
RabbitMQ request/reply.

The requesting node signs the request (who asks: node, department, subject, roles; what; a deadline) with
its key; the answering node checks that signature against its peers' published keys, applies its own
policy, grants and quota (the asking department needs a verification grant *there*), signs its verdict as
for a local caller and signs the answer. It processes a request at most once: the answer is stored by
request id before it is sent, and a redelivered request gets the stored answer; a request past its deadline
is answered DEADLINE_EXCEEDED and never processed. The requesting node checks the answer's and the
verdict's signatures and answers its caller. A query is answered the same way with the
records as that node masks them for its grant (the answer's signature covers them). Both nodes audit: the
requester's gRPC entry, the answerer's ``rpc/VerifyClaim`` or ``rpc/QueryRecords`` entry.

Through other nodes (``via_node``), a request is sealed to its origin end to end: the requester wraps it in a
route (``exnode-route/1``) the hops between read and sign on, and the origin's answer, sealed to the
requester, comes back inside each hop's signed route answer (``exnode-route-answer/1``); the requester checks
every hop's signature and the origin's. A middle node sees the origin, resource, deadline and request id.

Who asks is proven to the origin, never taken on a hop's word: the requester signs the first hop record
(``exnode-hop/1``: request, next hop, deadline, the sealed body's hash) and each relaying node adds its own;
the origin checks that chain and the requester's own signature over the request's identity claims
(consumer department, subject, roles, what is asked, deadline) with node keys it knows (``peers/``, as
verdicts are checked), before any grant or quota. Unsigned or unknown: UNAUTHENTICATED; forged or not
matching its route: PERMISSION_DENIED; audited, nothing stored or counted. (No grant id is claimed: grants
are the origin's own, and its signed answer names the one it applied.)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from catalog.claims import Claim, is_id_number_item
from catalog.lists import Grant
from catalog.model import ResourceStatus
from node.services.audit import AuditWriter, WriteTask
from node.services.errors import REMOTE_REFUSALS, RemoteUnavailable, TimestampsUnavailable
from node.services.query import KeyAnswer, QueryAnswer, QueryApplication, VerifyAnswer, VerifyRequest
from node.services.timestamps import Timestamps
from node.storage.catalog_repository import ResourceFilter
from node.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from security import verdicts
from security.audit import AuditRecord
from security.broker_sealing import SEALED_FORMAT, NotSealed, Sealing, parse_entry, seal_message
from security.identity import Principal
from security.keys import PublicKey, SigningKey
from security.policy import PermissionDenied
from security.sealing import HEADER_KID, BadConsumerKey, ConsumerKey, parse_consumer_key
from security.timestamps import Evidence, TimestampInvalid

REQUEST_CONTEXT = b"exnode-rpc-request/1\n"
CHECK_CONTEXT = b"exnode-check/1\n"
CHECK_ANSWER_CONTEXT = b"exnode-check-answer/1\n"
ANSWER_CONTEXT = b"exnode-rpc-answer/1\n"
Clock = Callable[[], dt.datetime]
Peers = Mapping[str, Mapping[str, PublicKey]]
"""node id → (key id → public key): the nodes this node trusts (``exchange.peers_dir``)."""


def _sign(context: bytes, document: dict[str, Any], signer: SigningKey, field: str) -> bytes:
    signature = signer.sign(context + verdicts.canonical(document))
    return json.dumps({field: document, "kid": signer.kid, "signature": base64.b64encode(signature).decode()},
                      ensure_ascii=False).encode()


def _open(context: bytes, body: bytes, field: str, peers: Peers, sender_field: str = "from"
          ) -> tuple[dict[str, Any], str | None]:
    """The signed document and None, or what is wrong with it (unknown sender, key or a bad signature)."""
    document, problem, _ = _checked(context, body, field, peers, sender_field)
    return document, problem


def _checked(context: bytes, body: bytes, field: str, peers: Peers, sender_field: str = "from"
             ) -> tuple[dict[str, Any], str | None, str]:
    """``_open`` with the status its refusal takes: UNAUTHENTICATED when who signed cannot be told (no
    signature, a sender or key this node does not know), PERMISSION_DENIED when the signature does not
    verify (forged, or changed after signing)."""
    try:
        wrapper = json.loads(body)
        document = wrapper[field]
        sender = str(document[sender_field])
    except (ValueError, KeyError, TypeError) as error:
        return {}, f"not a signed {field}: {error}", "UNAUTHENTICATED"
    if not isinstance(wrapper, dict) or not wrapper.get("signature") or not wrapper.get("kid"):
        return document, (f"the {field} of node {sender!r} is unsigned (no kid and signature of its node key): "
                          "who asks cannot be told"), "UNAUTHENTICATED"
    keys = peers.get(sender)
    if keys is None:
        return document, (f"node {sender!r} is not a trusted peer of this node (no public keys in the peers "
                          "directory)"), "UNAUTHENTICATED"
    kid = str(wrapper["kid"])
    key = keys.get(kid)
    if key is None:
        return document, f"the {field} is signed with key {kid!r}, not a key of node {sender!r} known here", \
            "UNAUTHENTICATED"
    try:
        signature = base64.b64decode(wrapper["signature"], validate=True)
    except (ValueError, TypeError):
        signature = b""
    if not key.verify(context + verdicts.canonical(document), signature):
        return document, f"the {field}'s signature does not verify with a key of node {sender!r}", \
            "PERMISSION_DENIED"
    return document, None, ""


ROUTE_CONTEXT = b"exnode-route/1\n"
ROUTE_ANSWER_CONTEXT = b"exnode-route-answer/1\n"


HOP_CONTEXT = b"exnode-hop/1\n"
CALLER_DEADLINE: ContextVar[float | None] = ContextVar("exnode_caller_deadline", default=None)
"""``time.monotonic()`` by which this node's own caller stops waiting (its gRPC deadline; set per call by
the gRPC layer, seen by the worker thread that asks): a routed request's deadline is never later, so the
answering node never processes, and never charges for, what nobody waits for any more."""
DEADLINE_SLACK_S = 0.25
"""A caller that leaves this close to its deadline left because of it: a client's deadline reaches the
server as the client's cancellation, a little before the server's own copy of it (which started counting
when the call arrived), so the audit entry says DEADLINE_EXCEEDED, not CANCELLED."""
CALLER_LEFT: ContextVar[list[str] | None] = ContextVar("exnode_caller_left", default=None)
"""Non-empty once this node's own caller has left (a cancelled VerifyClaim; set by its servicer): a
routed request's wait for its answer ends then instead of at the deadline, so callers that give up do
not hold the node's RPC threads."""


def body_hash(sealed: str) -> str:
    return hashlib.sha256(sealed.encode("utf-8")).hexdigest()


def hop_record(route: Mapping[str, Any], node: str, next_hop: str, signer: SigningKey) -> dict[str, Any]:
    """``node``'s signed word that it passed request ``id`` (the sealed body ``body_sha256``, for ``to``,
    until ``deadline``) on to ``next_hop``. The requester signs the first, each relaying node adds its own:
    the answering node checks the whole chain, so no hop can drop, add or reorder a node unseen, nor swap
    the sealed request (the requester's own record names the body it sealed)."""
    record = {"format": "exnode-hop/1", "id": str(route["id"]), "node": node, "next": next_hop,
              "to": str(route["to"]), "resource": str(route.get("resource", "")), "deadline": str(route["deadline"]),
              "body_sha256": str(route["body_sha256"])}
    return json.loads(_sign(HOP_CONTEXT, record, signer, "hop"))


def check_hops(route: Mapping[str, Any], hops: Sequence[str], me: str, peers: Peers) -> tuple[str | None, str]:
    """What is wrong with a route's chain of signed hop records, and the status of that refusal; (None, "")
    when every node on ``hops`` (a node key this node knows) signed its hop, in order, for this very
    request, sealed body and deadline, the last one to this node."""
    records = route.get("hop_records")
    if not isinstance(records, list) or len(records) != len(hops):
        count = len(records) if isinstance(records, list) else "no"
        return (f"the route carries {count} signed hop records for its {len(hops)} hops ({' → '.join(hops)}): "
                "who passed it on cannot be told"), "UNAUTHENTICATED"
    for position, (node, record) in enumerate(zip(hops, records, strict=True)):
        document, problem, status = _checked(HOP_CONTEXT, json.dumps(record, ensure_ascii=False).encode(), "hop",
                                             peers, "node")
        if problem is not None:
            return f"hop {position} ({node}): {problem}", status
        following = hops[position + 1] if position + 1 < len(hops) else me
        if document.get("node") != node or document.get("next") != following or any(
                str(document.get(k)) != str(route.get(k)) for k in ("id", "to", "resource", "deadline", "body_sha256")):
            return (f"hop {position} ({node}): its signed hop record is not for this request passed from node {node} "
                    f"to node {following} (id, origin, resource, deadline or sealed body differ)"), "PERMISSION_DENIED"
    return None, ""


def open_route_answer(reply: bytes, me: str, first_hop: str, origin_node: str, request_id: str, peers: Peers,
                      sealing: Sealing) -> tuple[dict[str, Any], str | None]:
    """The origin's signed answer inside a routed reply, or a relaying node's own refusal (no route, its
    deadline), and None; or what is wrong (a hop's signature, a changed chain of hops, an answer that does
    not open or is not the origin's to this request). Each hop signs its route answer with the next hop's
    inside; the origin's answer is sealed to this node, so no hop could read or change it unseen."""
    document, problem = _open(ROUTE_ANSWER_CONTEXT, reply, "route_answer", peers)
    if problem is not None:
        return {}, f"hop 1 ({first_hop}): {problem}"
    hops = document.get("hops")
    if not isinstance(hops, list) or hops[:2] != [me, first_hop] or len(set(map(str, hops))) != len(hops) or \
            origin_node in hops[:-1]:
        return {}, f"the chain of hops {hops!r} is not {me} → {first_hop} → … → {origin_node}"
    for position in range(1, len(hops)):
        if document.get("from") != hops[position] or document.get("id") != request_id or document.get("hops") != hops:
            return {}, (f"hop {position} ({hops[position]}): its route answer is not node {hops[position]}'s to "
                        f"request {request_id} along {' → '.join(map(str, hops))}")
        if "sealed_answer" in document:
            if position != len(hops) - 1 or hops[position] != origin_node:
                return {}, f"hop {position} ({hops[position]}) answers in the place of node {origin_node}"
            try:
                opened = sealing.open(str(document["sealed_answer"]).encode())
            except NotSealed as error:
                return {}, f"node {origin_node}'s answer does not open (changed on the way?): {error}"
            answer, problem = _open(ANSWER_CONTEXT, opened, "answer", peers)
            if problem is None and (answer.get("from") != origin_node or answer.get("id") != request_id
                                    or answer.get("to") != me or answer.get("hops") != hops):
                problem = f"the sealed answer is not node {origin_node}'s to request {request_id} along its hops"
            return answer, problem
        if "relayed" not in document:  # a relaying node's own refusal: the route ends there
            if position != len(hops) - 1 or str(document.get("status", "")) in ("", "OK"):
                return {}, f"hop {position} ({hops[position]}) answers without node {origin_node}'s answer"
            where = "" if hops[position] == origin_node else f"via node {hops[position]}: "
            return {"status": str(document.get("status", "UNAVAILABLE")),
                    "message": f"{where}{document.get('message', '')}", "hops": hops}, None
        if position == len(hops) - 1:
            return {}, f"hop {position} ({hops[position]}) relays from beyond the end of its chain of hops"
        document, problem = _open(ROUTE_ANSWER_CONTEXT, json.dumps(document["relayed"], ensure_ascii=False).encode(),
                                  "route_answer", peers)
        if problem is not None:
            return {}, f"hop {position + 1} ({hops[position + 1]}): {problem}"
    return {}, "an empty chain of hops"


class RemoteQueries:
    """The requesting side: forwards a verification to the node that holds the resource."""

    def __init__(self, node_id: str, signer: SigningKey, peers: Peers,
                 call: Callable[[str, bytes, float], bytes], clock: Clock, timeout_s: float = 10.0,
                 sealing: Sealing | None = None) -> None:
        self.sealing = sealing
        """This node's side of the sealing: each request names its key (``reply_key``) and the answer is
        sealed to it (``call`` seals each message to the next hop and opens its reply,
        ``security.broker_sealing``); a request routed through other nodes is sealed to the origin itself."""
        self.reply_key = sealing.reply_key if sealing is not None else None
        self.node_id = node_id
        self.signer = signer
        self.peers = peers
        self.call = call
        self.clock = clock
        self.timeout_s = timeout_s

    def _ask(self, principal: Principal, origin_node: str, kind: str, fields: dict[str, Any], via: str = ""
             ) -> tuple[dict[str, Any], dt.datetime]:
        """Send one signed request for ``origin_node`` to the next hop ``via`` (default: the origin itself)
        and return its checked answer (status OK), or raise the refusal it names; a missing, forged or
        misaddressed answer, or one whose chain of hops does not check, is UNAVAILABLE."""
        now = self.clock()
        hop = via or origin_node
        request_id = uuid.uuid4().hex
        timeout = self.timeout_s
        caller_deadline = CALLER_DEADLINE.get()
        if caller_deadline is not None:  # never ask for longer than this node's own caller waits
            timeout = min(timeout, caller_deadline - time.monotonic())
            if timeout <= 0:
                raise REMOTE_REFUSALS["DEADLINE_EXCEEDED"](origin_node, "the caller's deadline passed before the "
                                                           "request was sent: it was not sent")
        document = {
            "format": "exnode-rpc/1", "id": request_id, "kind": kind, "from": self.node_id, "to": origin_node,
            "deadline": (now + dt.timedelta(seconds=timeout)).isoformat(), "hops": [self.node_id],
            "consumer": principal.department_code, "subject": principal.subject,
            "roles": sorted(principal.roles & {"consumer", "platform"}), **fields}
        if self.reply_key:
            document["reply_key"] = self.reply_key
        body = _sign(REQUEST_CONTEXT, document, self.signer, "request")
        if hop != origin_node:
            body = self._route(document, body, hop)
        try:
            reply = self.call(hop, body, timeout)
        except (TimeoutError, ConnectionError) as error:
            raise REMOTE_REFUSALS["DEADLINE_EXCEEDED" if isinstance(error, TimeoutError) else "UNAVAILABLE"](
                origin_node, str(error)) from None
        if hop != origin_node:
            assert self.sealing is not None  # _route refused otherwise
            answer, problem = open_route_answer(reply, self.node_id, hop, origin_node, request_id, self.peers,
                                                self.sealing)
        else:
            answer, problem = _open(ANSWER_CONTEXT, reply, "answer", self.peers)
            if problem is None and (answer.get("from") != hop or answer.get("id") != request_id):
                problem = f"the answer is not node {hop}'s to request {request_id}"
        if problem is not None:
            raise RemoteUnavailable(origin_node, f"answer refused: {problem}")
        status = str(answer.get("status", ""))
        if status != "OK":
            raise REMOTE_REFUSALS.get(status, RemoteUnavailable)(origin_node, str(answer.get("message", status)))
        return answer, now

    def _route(self, document: Mapping[str, Any], signed: bytes, hop: str) -> bytes:
        """The signed request sealed to ``origin_node`` itself, inside a route the hops between can read
        (``exnode-route/1``: request id, origin, resource, deadline, hops and the sealed body's hash, signed
        by each hop in turn, and the chain of signed hop records, this node's the first): they route it and
        sign their hop, but read no key, claim or answer."""
        origin_node = str(document["to"])
        key = self.sealing.peers.get(origin_node) if self.sealing is not None else None
        if key is None:
            raise RemoteUnavailable(origin_node, "it publishes no encryption key here (\"encryption\" in its "
                                    "public-keys.json in the peers directory): nothing is routed to it in clear")
        sealed = seal_message(signed, origin_node, key).decode()
        route = {"format": "exnode-route/1", "id": document["id"], "from": self.node_id, "to": origin_node,
                 "resource": document.get("resource", ""), "deadline": document["deadline"], "hops": [self.node_id],
                 "reply_key": self.reply_key, "body_sha256": body_hash(sealed)}
        route["hop_records"] = [hop_record(route, self.node_id, hop, self.signer)]
        wrapper = json.loads(_sign(ROUTE_CONTEXT, route, self.signer, "route"))
        return json.dumps({**wrapper, "sealed_request": sealed}, ensure_ascii=False).encode()

    def query_records(self, principal: Principal, origin_node: str, resource_code: str,
                      keys: Sequence[Mapping[str, str]], seal_key: ConsumerKey | None = None, via: str = ""
                      ) -> QueryAnswer:
        """The current records of ``keys`` as ``origin_node`` answers them: its grant, its masking, its key
        hashes; the answer's signature is checked before anything of it is used. With ``seal_key`` (the
        consumer's registered key) that node seals the records to it: they cross the broker sealed."""
        fields: dict[str, Any] = {"resource": resource_code,
                                  "keys": [{str(k): str(v) for k, v in key.items()} for key in keys]}
        if seal_key is not None:
            fields["seal_to"] = {"kid": seal_key.kid, "algorithm": seal_key.algorithm,
                                 "public_pem": seal_key.public_pem}
        answer, _ = self._ask(principal, origin_node, "query", fields, via)
        try:
            results = [KeyAnswer(int(r["index"]), str(r["key_hash"]), bool(r["found"]), str(r.get("record_id", "")),
                                 int(r.get("sequence", 0)), dict(r.get("payload") or {}),
                                 disputed=bool(r.get("disputed", False)),
                                 sealed=base64.b64decode(str(r.get("sealed", "")), validate=True))
                       for r in answer["results"]]
            grant_id = str(answer["grant"])
            sealing = {str(k): str(v) for k, v in (answer.get("sealing") or {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RemoteUnavailable(origin_node, f"answer refused: not a query answer ({error})") from None
        if sorted(r.index for r in results) != list(range(len(keys))):
            raise RemoteUnavailable(origin_node, f"answer refused: {len(results)} results for {len(keys)} keys")
        asked_kid = seal_key.kid if seal_key is not None else None
        if sealing.get(HEADER_KID) != asked_kid or any(
                (bool(r.sealed) != bool(asked_kid and r.found)) or (asked_kid and r.payload) for r in results):
            raise RemoteUnavailable(origin_node, "answer refused: its records are not sealed as asked "
                                    f"(to key {asked_kid or 'none'})")
        if via and via != origin_node:
            origin_node += f" via {' → '.join(answer['hops'][1:-1])}"
        return QueryAnswer(resource_code, grant_id, sorted(results, key=lambda r: r.index), answered_by=origin_node,
                           sealing=sealing, request_id=str(answer.get("request_id", "")))

    def verify_claim(self, principal: Principal, origin_node: str, request: VerifyRequest, via: str = ""
                     ) -> VerifyAnswer:
        answer, now = self._ask(principal, origin_node, "verify", {
            "caller_request_id": request.request_id, "resource": request.resource_code, "key": dict(request.key),
            "claims": [{"item": c.item, "value": c.value} for c in request.claims]}, via)
        file = answer["verdict"]
        problems = verdicts.verify_file(file, self.peers.get(origin_node, {}), origin_node)
        if problems:
            raise RemoteUnavailable(origin_node, f"verdict refused: {'; '.join(problems)}")
        grant = Grant(str(file["verdict"]["grant"]), principal.department_code, "", request.resource_code, (),
                      now, daily_quota=int(answer.get("daily_quota", 0)))
        return VerifyAnswer(verdicts.SignedVerdict(file["verdict"], base64.b64decode(file["signature"])),
                            file["request"], grant, int(answer.get("used_today", 0)),
                            answered_by=origin_node + (f" via {' → '.join(answer['hops'][1:-1])}" if via and via !=
                                                       origin_node else ""))

    def timestamp(self, principal: Principal, origin_node: str, kind: str, ref: str, resource_code: str,
                  via: str = "") -> Evidence:
        """The RFC 3161 evidence ``origin_node`` holds for a statement it signed (a routed verification's
        verdict: the node that answered stamps it, through its own TSA round), routed like the verification
        (``resource_code``). The token is checked by whoever keeps the verdict, offline; here only that it
        is evidence of the statement asked for."""
        answer, _ = self._ask(principal, origin_node, "timestamp",
                              {"resource": resource_code, "timestamp_kind": kind, "ref": ref}, via)
        try:
            evidence = Evidence.from_dict(answer["evidence"])
        except (KeyError, TimestampInvalid) as error:
            raise RemoteUnavailable(origin_node, f"answer refused: not timestamp evidence ({error})") from None
        if evidence.kind != kind or evidence.ref != ref:
            raise RemoteUnavailable(origin_node, f"answer refused: evidence of {evidence.kind} {evidence.ref}, "
                                    f"not of {kind} {ref}")
        return evidence


class RemoteAnswerer:
    """The answering side: ``handle`` is the RPC responder's handler (adapters.rabbit.rpc.RpcResponder).

    ``status_of`` names the gRPC status of a refusal (node/grpc/errors.py's table); an error it does not
    name (the database is down) is raised as ``transient`` so the request is requeued, not answered."""

    def __init__(self, uow: UnitOfWorkFactory, query: QueryApplication, node_id: str, signer: SigningKey,
                 peers: Peers, clock: Clock, audit_writer: AuditWriter, status_of: Callable[[Exception], str | None],
                 transient: type[Exception]) -> None:
        self.uow = uow
        self.query = query
        self.node_id = node_id
        self.signer = signer
        self.peers = peers
        self.clock = clock
        self.audit_writer = audit_writer
        self.status_of = status_of
        self.transient = transient
        self.forward: Callable[[str, bytes, float], bytes] | None = None
        """Sends a request on to the next hop and waits for its answer (``RpcClient.call``): a request for
        a node below a lower node of this one is relayed (two tiers and more)."""
        self.timestamps: Timestamps | None = None
        """This node's trusted timestamps (a node with ``tsa.url``): the evidence of the verdicts it signed
        for other nodes' callers, which they fetch through the node that asked."""
        self.sealing: Sealing | None = None
        """Set when the node has an encryption key (``Node.start_rpc``): requests must come sealed to it, and
        every answer is sealed to the request's ``reply_key``; nothing personal crosses the broker in clear."""

    def handle(self, body: bytes) -> bytes:
        sealing = self.sealing
        if sealing is not None:
            try:
                body = sealing.open(body)
            except NotSealed as error:  # not even read: a refusal in clear holds nothing of the request
                return self._answer({}, "PERMISSION_DENIED", f"node {self.node_id} answers only requests sealed to "
                                    f"its encryption key ({SEALED_FORMAT}): {error}", {})
        try:
            message = json.loads(body)
            request = message["route"] if "route" in message else message["request"]
            is_check, is_route = request["format"] == "exnode-check/1", "route" in message
        except (ValueError, KeyError, TypeError):
            request, is_check, is_route = {}, False, False
        reply = self.answer_check(body) if is_check else self.answer_route(body) if is_route \
            else self.answer_request(body)
        if sealing is None:
            return reply
        reader = str(request.get("from", "")) if isinstance(request, dict) else ""
        try:
            key = parse_entry(request.get("reply_key")) if isinstance(request, dict) and request.get("reply_key") \
                else sealing.peers[reader]
        except (BadConsumerKey, KeyError):
            return self._answer(request if isinstance(request, dict) else {}, "INVALID_ARGUMENT",
                                "the request names no usable reply_key (and its sender publishes no encryption "
                                "key here): its answer is not sent in clear", {})
        return seal_message(reply, reader, key)

    def answer_check(self, body: bytes) -> bytes:
        """A household check's request to this node as a department (schemas/household-check.schema.json):
        for each member, the current record of every published resource keyed by 公民身份号码 that the
        asking department holds a live grant for here, masked per that grant; REFUSED when it holds none.
        At most once, like verifications."""
        now = self.clock()
        document, problem = _open(CHECK_CONTEXT, body, "request", self.peers)
        check_id = str(document.get("check_id", ""))[:40]
        requester = str(document.get("from", ""))[:128]
        answer_id = f"check:{check_id}:{self.node_id}"[:64]
        with self.uow() as uow:
            stored = uow.verifications.stored_answer(answer_id)
        if stored is not None:
            return stored
        findings: dict[str, dict[str, Any]] = {}
        status, reason = "ANSWERED", ""
        if problem is not None:
            status, reason = "REFUSED", problem
        else:
            principal = Principal(f"{requester}/核对"[:200], str(document.get("requester", "")), frozenset({"consumer"}),
                                  issuer=f"node:{requester}")
            members = [str(m.get("id_number", "")) for m in document.get("members", []) if isinstance(m, dict)]
            with self.uow() as uow:
                resources = [r for r in uow.catalog.all(ResourceFilter(status=ResourceStatus.PUBLISHED))
                             if not r.origin_node]
            granted = 0
            for resource in resources:
                keys = resource.latest.metadata.key_items
                if len(keys) != 1 or not is_id_number_item(keys[0]):
                    continue
                try:
                    answer = self.query.query_records(principal, resource.code,
                                                      [{keys[0].name: member} for member in members])
                except PermissionDenied:
                    continue
                granted += 1
                for index, found in enumerate(answer.answers):
                    if found.found:
                        items = findings.setdefault(members[index], {})
                        items.update({f"{resource.latest.metadata.name}·{k}": v for k, v in found.payload.items()})
            if not granted:
                status, reason = "REFUSED", (f"department {principal.department_code} holds no live grant here for a "
                                             "resource keyed by 公民身份号码")
        answer_document = {"format": "exnode-check-answer/1", "check_id": check_id, "target": self.node_id,
                           "status": status, "reason": reason,
                           "findings": [{"id_number": k, "items": v} for k, v in findings.items()],
                           "at": now.isoformat()}
        signature = self.signer.sign(CHECK_ANSWER_CONTEXT + verdicts.canonical(answer_document))
        reply = json.dumps({"answer": answer_document, "kid": self.signer.kid,
                            "signature": base64.b64encode(signature).decode()}, ensure_ascii=False).encode()
        with self.uow(write=True) as uow:
            if uow.verifications.stored_answer(answer_id) is None:
                uow.verifications.store_answer(answer_id, requester, reply, now)
                uow.commit()
        self.audit_writer.append([AuditRecord(
            at=now, request_id=answer_id, subject=f"{requester}/核对"[:200],
            department_code=str(document.get("requester", ""))[:18], roles=("consumer",),
            action="rpc/HouseholdCheck", target=f"check:{check_id}"[:200], result=status,
            peer=f"node:{requester}"[:100],
            detail=(f"{len(document.get('members', []))} members, {len(findings)} found"
                    + (f"; {reason}" if reason else ""))[:2000])])
        return reply

    def answer_request(self, body: bytes) -> bytes:
        """A verification or a keyed query another node forwards for its caller: checked, answered under this
        node's own grants, stored by request id before it is sent, audited."""
        document, problem, status = _checked(REQUEST_CONTEXT, body, "request", self.peers)
        if problem is None and str(document.get("to") or self.node_id) != self.node_id:
            problem, status = (f"a request for node {document.get('to')} reaches node {self.node_id} unrouted: it "
                               "must come sealed to that node inside a route (exnode-route/1), which this node "
                               "passes on unread"), "PERMISSION_DENIED"
        return self._process(document, problem, str(document.get("from", ""))[:128], refusal=status)

    def _process(self, document: Mapping[str, Any], problem: str | None, requester: str,
                 hops: Sequence[str] = (), refusal: str = "PERMISSION_DENIED") -> bytes:
        """``document`` answered as asked by ``requester`` (the node whose signature on the request this
        node checked with that node's own key; routed, ``hops`` are the route's, the requester first and the
        hop before last, each hop's record checked too): the signed answer, stored before it is sent,
        audited. A ``problem`` (who asks is not proven) is refused with ``refusal``, audited, nothing else."""
        now = self.clock()
        request_id = str(document.get("id", ""))[:64] or uuid.uuid4().hex
        kind = str(document.get("kind")) if document.get("kind") in ("query", "timestamp") else "verify"
        action = {"query": "rpc/QueryRecords", "timestamp": "rpc/GetTimestamp"}.get(kind, "rpc/VerifyClaim")
        route: dict[str, Any] = {"hops": [*hops, self.node_id]} if hops else {}
        peer = hops[-1] if hops else requester  # the node this request came from over the broker
        if problem is not None:
            self._audit_only(self._record(now, request_id, peer, None, action, document, refusal, problem))
            return self._answer(document, refusal, problem, route)
        with self.uow() as uow:
            stored = uow.verifications.stored_answer(request_id)
        if stored is not None:  # a redelivery: the same answer, not a second verification
            return stored
        fields: dict[str, Any] = {}
        try:
            deadline = dt.datetime.fromisoformat(str(document["deadline"]))
            principal = Principal(f"{requester}/{document['subject']}"[:200], str(document["consumer"]),
                                  frozenset(document.get("roles", ())) & {"consumer", "platform"},
                                  issuer=f"node:{requester}")
            resource = str(document["resource"])
            if kind == "query":
                keys = [{str(k): str(v) for k, v in key.items()} for key in document["keys"]]
                wanted = document.get("seal_to")
                seal_key = parse_consumer_key(str(wanted["algorithm"]), str(wanted["public_pem"])) if wanted else None
            elif kind == "timestamp":
                stamped, ref = str(document["timestamp_kind"]), str(document["ref"])[:128]
                if stamped != "verdict":
                    raise ValueError(f"timestamp_kind {stamped!r}: only a verdict's evidence is asked across nodes")
            else:
                request = VerifyRequest(resource, {str(k): str(v) for k, v in document["key"].items()},
                                        [Claim(str(c["item"]), str(c["value"])) for c in document["claims"]],
                                        request_id)
        except (KeyError, TypeError, ValueError, AttributeError, BadConsumerKey) as error:
            status, message = "INVALID_ARGUMENT", f"not a {kind} request: {error}"
            principal = None
        else:
            if now > deadline:
                status, message = "DEADLINE_EXCEEDED", f"the request's deadline {deadline.isoformat()} has passed"
            else:
                committed: list[bytes] = []
                verifier = principal

                def commit_with_count(uow: UnitOfWork, answer: VerifyAnswer) -> None:
                    """The answer stored and audited in the quota count's transaction: a crash between
                    them never leaves a counted verification that a redelivery counts again."""
                    message = answer.audit_detail()
                    reply = self._answer(document, "OK", message, {**self._verify_fields(answer), **route})
                    self._store_in(uow, request_id, requester, reply, now, self._record(
                        now, request_id, peer, verifier, action, document, "OK", message))
                    committed.append(reply)

                try:
                    if kind == "timestamp":
                        if self.timestamps is None:
                            raise TimestampsUnavailable(f"node {self.node_id} takes no trusted timestamps "
                                                        "(tsa.url is not configured)")
                        evidence = self.timestamps.evidence(stamped, ref)
                    elif kind == "query":
                        queried = self.query.query_records(principal, resource, keys, request_id, seal_key)
                    else:
                        self.query.verify_claim(principal, request, then=commit_with_count)
                        return committed[0]
                except Exception as error:
                    code = self.status_of(error)
                    if code is None:
                        raise self.transient(f"{type(error).__name__}: {error}") from error
                    status, message = code, str(error)
                else:  # a timestamp or a query (a verification returned above)
                    status = "OK"
                    if kind == "timestamp":
                        message = f"timestamp evidence of {stamped} {ref}"
                        fields = {"evidence": evidence.to_dict()}
                    else:
                        message = queried.audit_detail()
                        fields = {"grant": queried.grant_id, "sealing": queried.sealing,
                                  "request_id": queried.request_id, "results": [
                                      {"index": a.index, "key_hash": a.key_hash, "found": a.found,
                                       "record_id": a.record_id, "sequence": a.sequence, "payload": a.payload,
                                       "disputed": a.disputed, "sealed": base64.b64encode(a.sealed).decode()}
                                      for a in queried.answers]}
        reply = self._answer(document, status, message, {**fields, **route})
        record = self._record(now, request_id, peer, principal, action, document, status, message)
        writer = self.audit_writer
        if writer.running():  # rides in the audit trail's next group commit
            writer.submit_task(WriteTask(lambda uow: self._store_in(uow, request_id, requester, reply, now,
                                                                    record))).result()
        else:
            with self.uow(write=True) as uow:
                self._store_in(uow, request_id, requester, reply, now, record)
                uow.commit()
        return reply

    @staticmethod
    def _verify_fields(answer: VerifyAnswer) -> dict[str, Any]:
        return {"verdict": answer.verdict.file(answer.request), "used_today": answer.used_today,
                "daily_quota": answer.grant.daily_quota}

    def _store_in(self, uow: UnitOfWork, request_id: str, requester: str, reply: bytes, now: dt.datetime,
                  record: AuditRecord) -> None:
        """The answer kept for redeliveries and its audit entry, in the caller's transaction (both or neither)."""
        if uow.verifications.stored_answer(request_id) is None:
            uow.verifications.store_answer(request_id, requester, reply, now)
        self.audit_writer.join_batch(uow, [record])

    @staticmethod
    def _record(now: dt.datetime, request_id: str, requester: str, principal: Principal | None, action: str,
                document: Mapping[str, Any], status: str, message: str) -> AuditRecord:
        return AuditRecord(
            at=now, request_id=request_id, subject=principal.subject if principal else requester,
            department_code=principal.department_code if principal else "",
            roles=tuple(sorted(principal.roles)) if principal else (), action=action,
            target=f"resource:{document.get('resource', '')}"[:200], result=status,
            peer=f"node:{requester}"[:100], detail=message[:2000])

    def answer_route(self, body: bytes) -> bytes:
        """A routed request (``exnode-route/1``): its route signed by the hop before (a trusted peer) and a
        request sealed to the origin. For another node, the route is passed on to the next hop with this
        node's signature (the sealed request unread: this node sees the origin, resource, deadline and request
        id only) and the answer back inside this node's signed route answer. For this node, the request is
        opened, checked against its route and answered as one from the hop before, and the answer is sealed to
        the requester's own key: only the requester reads it."""
        now = self.clock()
        route, problem, route_status = _checked(ROUTE_CONTEXT, body, "route", self.peers)
        sender = str(route.get("from", ""))[:128]
        hops = [str(h) for h in route.get("hops") or [sender]] if isinstance(route.get("hops"), list) else [sender]
        try:
            sealed = str(json.loads(body)["sealed_request"])
            deadline = dt.datetime.fromisoformat(str(route["deadline"]))
            if deadline.tzinfo is None:
                raise ValueError(f"deadline {route['deadline']!r} has no time zone")
            to, resource = str(route["to"]), str(route["resource"])
        except (ValueError, KeyError, TypeError) as error:
            problem = problem or f"not a route: {error}"
            sealed, deadline, to, resource = "", now, "", ""
        if problem is None and (hops[-1:] != [sender] or self.node_id in hops):
            problem = f"a routing loop or a broken chain of hops: {' → '.join(hops)} → {self.node_id}"
        if problem is None and body_hash(sealed) != route.get("body_sha256"):
            problem = "the sealed request is not the one its route was signed for"
        here = [*hops, self.node_id]  # the chain of hops of what this node answers itself
        if problem is not None:
            return self._refuse_route(route, here, route_status or "PERMISSION_DENIED", problem, now)
        if now > deadline:
            return self._refuse_route(route, here, "DEADLINE_EXCEEDED",
                                      f"the request's deadline {deadline.isoformat()} has passed", now)
        if to != self.node_id:
            return self._pass_on(route, sealed, hops, resource, deadline, now)
        if self.sealing is None:
            return self._route_answer(route, here, "UNAVAILABLE", f"node {self.node_id} has no encryption key: "
                                      "it cannot open a request sealed to it")
        # who asks, before anything is applied: the requester's signed hop and each relaying node's, in order
        hop_problem, status = check_hops(route, hops, self.node_id, self.peers)
        if hop_problem is not None:
            return self._refuse_route(route, here, status, f"the chain of hops does not check: {hop_problem}", now)
        try:
            opened = self.sealing.open(sealed.encode())
        except NotSealed as error:
            return self._route_answer(route, here, "UNAVAILABLE", f"the sealed request does not open at node "
                                      f"{self.node_id} (changed on the way, or not sealed to it): {error}")
        # the requester's identity claims (consumer, subject, roles, deadline, what is asked) under its own
        # node key, which this node must know: no hop's word stands in for it
        document, problem, status = _checked(REQUEST_CONTEXT, opened, "request", self.peers)
        if problem is not None:
            problem = f"the requester's signature: {problem}"
        elif str(document.get("from", "")) != hops[0]:
            problem, status = (f"the request is signed by node {document.get('from')!r} but its route starts at "
                               f"node {hops[0]}"), "PERMISSION_DENIED"
        elif any(str(document.get(k)) != str(route.get(k)) for k in ("id", "to", "deadline")) \
                or str(document.get("resource", "")) != resource or document.get("hops") != hops[:1]:
            problem, status = ("the sealed request does not match its route (id, origin, resource, deadline or "
                               "hops)"), "PERMISSION_DENIED"
        if problem is not None:
            return self._refuse_route(route, here, status, problem, now, document)
        answer = self._process(document, None, hops[0], hops)
        reply_key = document.get("reply_key")
        try:
            key = parse_entry(reply_key)
        except BadConsumerKey as error:
            return self._route_answer(route, here, "INVALID_ARGUMENT", f"the sealed request names no usable "
                                      f"reply_key ({error}): its answer is not sent in clear")
        return self._route_answer(route, here, sealed_answer=seal_message(
            answer, str(document.get("from", "")), key).decode())

    def _refuse_route(self, route: Mapping[str, Any], here: list[str], status: str, problem: str,
                      now: dt.datetime, document: Mapping[str, Any] | None = None) -> bytes:
        """A routed request this node refuses before applying anything (a hop or the requester not
        proven, past its deadline): audited, nothing stored (a redelivery is refused the same way) and no
        quota spent; the refusal, signed, goes back along the route."""
        kind = str((document or {}).get("kind", ""))
        action = {"query": "rpc/QueryRecords", "timestamp": "rpc/GetTimestamp", "verify": "rpc/VerifyClaim"}.get(
            kind, "rpc/Route")
        sender = here[-2] if len(here) > 1 else ""
        claimed = f" (claims department {document.get('consumer')}, subject {document.get('subject')})" \
            if document and document.get("consumer") else ""
        self._audit_only(AuditRecord(
            at=now, request_id=str(route.get("id", ""))[:64] or uuid.uuid4().hex, subject=f"node:{here[0]}"[:200],
            department_code="", roles=(), action=action, target=f"resource:{route.get('resource', '')}"[:200],
            result=status, peer=f"node:{sender}"[:100],
            detail=f"{problem}; hops {' → '.join(here)}{claimed}"[:2000]))
        return self._route_answer(route, here, status, problem)

    def _audit_only(self, record: AuditRecord) -> None:
        """One entry in the audit trail's next group commit (or a transaction of its own without the writer)."""
        writer = self.audit_writer
        if writer.running():
            writer.submit_task(WriteTask(lambda uow: writer.join_batch(uow, [record]))).result()
        else:
            writer.append([record])

    def _pass_on(self, route: Mapping[str, Any], sealed: str, hops: list[str], resource: str,
                 deadline: dt.datetime, now: dt.datetime) -> bytes:
        """A route for a node further down, signed on to the next hop; its signed route answer back inside
        this node's. This node decides the route only: the origin applies its own grants. Stored by request
        id (a redelivery gets the same answer), audited as ``rpc/Relay``."""
        request_id, sender, to = str(route["id"])[:64], hops[-1], str(route["to"])
        with self.uow() as uow:
            stored = uow.verifications.stored_answer(request_id)
            origin, hop = uow.catalog.route(resource) if stored is None else ("", "")
        if stored is not None:
            return stored
        status, message, relayed, chain = "OK", f"routed to node {to} via node {hop}", None, None
        if origin != to:
            held = f"held by node {origin}" if origin else "not a foreign entry"
            status, message = "FAILED_PRECONDITION", (f"node {self.node_id} has no route to node {to} for {resource} "
                                                      f"(here it is {held})")
        elif hop in hops:
            status, message = "FAILED_PRECONDITION", f"a routing loop: {' → '.join(hops)} → {self.node_id} → {hop}"
        elif self.forward is None or self.sealing is None:
            status, message = "UNAVAILABLE", f"node {self.node_id} does not talk to other nodes"
        else:
            records = route.get("hop_records") if isinstance(route.get("hop_records"), list) else []
            onward = {**route, "from": self.node_id, "hops": [*hops, self.node_id], "reply_key": self.sealing.reply_key,
                      "hop_records": [*records, hop_record(route, self.node_id, hop, self.signer)]}
            signed = json.loads(_sign(ROUTE_CONTEXT, onward, self.signer, "route"))
            remaining = (deadline - now).total_seconds() * 0.9  # time for this node's answer to travel back
            try:
                reply = self.forward(hop, json.dumps({**signed, "sealed_request": sealed}, ensure_ascii=False).encode(),
                                     remaining)
            except TimeoutError as error:
                status, message = "DEADLINE_EXCEEDED", f"via node {self.node_id}: {error}"
            except ConnectionError as error:
                status, message = "UNAVAILABLE", f"via node {self.node_id}: {error}"
            else:
                inner, problem = _open(ROUTE_ANSWER_CONTEXT, reply, "route_answer", self.peers)
                if problem is None and (inner.get("from") != hop or inner.get("id") != request_id):
                    problem = f"the route answer is not node {hop}'s to request {request_id}"
                if problem is not None:
                    status, message = "UNAVAILABLE", f"via node {self.node_id}: answer of node {hop} refused: {problem}"
                else:
                    relayed = json.loads(reply)
                    chain = inner.get("hops")
        reply_body = self._route_answer(route, chain, relayed=relayed) if relayed is not None \
            else self._route_answer(route, [*hops, self.node_id], status, message)
        record = AuditRecord(at=now, request_id=request_id, subject=sender, department_code="", roles=(),
                             action="rpc/Relay", target=f"resource:{resource}"[:200], result=status,
                             peer=f"node:{sender}"[:100], detail=f"{message}; hops {' → '.join(hops)}"[:2000])
        with self.uow(write=True) as uow:
            self._store_in(uow, request_id, sender, reply_body, now, record)
            uow.commit()
        return reply_body

    def _route_answer(self, route: Mapping[str, Any], chain: Any, status: str = "", message: str = "",
                      **fields: Any) -> bytes:
        """This node's signed route answer to the hop before, along ``chain``: its own refusal (``status``),
        the next hop's route answer (``relayed``) or the origin's answer sealed to the requester
        (``sealed_answer``)."""
        document: dict[str, Any] = {"format": "exnode-route-answer/1", "id": str(route.get("id", "")),
                                    "from": self.node_id, "to": str(route.get("from", "")), "hops": chain,
                                    "at": self.clock().isoformat(), **fields}
        if status:
            document.update(status=status, message=message)
        return _sign(ROUTE_ANSWER_CONTEXT, document, self.signer, "route_answer")

    def _answer(self, request: Mapping[str, Any], status: str, message: str, fields: dict[str, Any]) -> bytes:
        document = {"format": "exnode-rpc-answer/1", "id": str(request.get("id", "")), "from": self.node_id,
                    "to": str(request.get("from", "")), "status": status, "message": message,
                    "at": self.clock().isoformat(), **fields}
        return _sign(ANSWER_CONTEXT, document, self.signer, "answer")
