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
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from catalog.claims import Claim, is_id_number_item
from catalog.lists import Grant
from catalog.model import ResourceStatus
from node.services.audit import AuditWriter
from node.services.errors import REMOTE_REFUSALS, RemoteUnavailable
from node.services.query import KeyAnswer, QueryAnswer, QueryApplication, VerifyAnswer, VerifyRequest
from node.storage.catalog_repository import ResourceFilter
from node.storage.unit_of_work import UnitOfWorkFactory
from security import verdicts
from security.audit import AuditRecord
from security.identity import Principal
from security.keys import PublicKey, SigningKey
from security.policy import PermissionDenied
from security.sealing import HEADER_KID, BadConsumerKey, ConsumerKey, parse_consumer_key

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
    try:
        wrapper = json.loads(body)
        document = wrapper[field]
        kid = str(wrapper["kid"])
        signature = base64.b64decode(wrapper["signature"], validate=True)
        sender = str(document[sender_field])
    except (ValueError, KeyError, TypeError) as error:
        return {}, f"not a signed {field}: {error}"
    keys = peers.get(sender)
    if keys is None:
        return document, f"node {sender!r} is not a trusted peer of this node (no public keys in the peers directory)"
    key = keys.get(kid)
    if key is None or not key.verify(context + verdicts.canonical(document), signature):
        return document, f"the {field}'s signature does not verify with a key of node {sender!r}"
    return document, None


PASSED_ON = ("status", "message", "verdict", "used_today", "daily_quota", "grant", "results", "sealing",
             "request_id")
"""What a relaying node copies from the answer it got into the answer it gives (checked equal upstream)."""


def check_chain(answer: Mapping[str, Any], before: list[str], origin_node: str, request_id: str, peers: Peers
                ) -> str | None:
    """What is wrong with the chain of hops of a relayed answer (None: it checks). ``answer`` is signed by
    the next hop (already checked); its ``hops`` must be ``before`` + that hop + … + ``origin_node``, and
    its ``relayed`` answer, signed by the hop after it, must say the same, down to the origin's own."""
    hops = answer.get("hops")
    if not isinstance(hops, list) or hops[:len(before)] != before or len(hops) < len(before) + 2 or \
            hops[-1] != origin_node or hops[len(before)] != answer.get("from") or len(set(hops)) != len(hops):
        return f"the chain of hops {hops!r} is not {' → '.join(before)} → {answer.get('from')} → … → {origin_node}"
    current: Mapping[str, Any] = answer
    for position in range(len(before), len(hops) - 1):
        relayed = current.get("relayed")
        inner, problem = _open(ANSWER_CONTEXT, json.dumps(relayed, ensure_ascii=False).encode(), "answer", peers)
        if problem is not None:
            return f"hop {position + 1} ({hops[position + 1]}): {problem}"
        if inner.get("from") != hops[position + 1] or inner.get("id") != request_id:
            return f"hop {position + 1}: the relayed answer is not node {hops[position + 1]}'s to request {request_id}"
        changed = [k for k in PASSED_ON if current.get(k) != inner.get(k)]
        if changed:
            return f"node {hops[position]} changed {', '.join(changed)} of node {hops[position + 1]}'s answer"
        current = inner
    return None


class RemoteQueries:
    """The requesting side: forwards a verification to the node that holds the resource."""

    def __init__(self, node_id: str, signer: SigningKey, peers: Peers,
                 call: Callable[[str, bytes, float], bytes], clock: Clock, timeout_s: float = 10.0) -> None:
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
        document = {
            "format": "exnode-rpc/1", "id": request_id, "kind": kind, "from": self.node_id, "to": origin_node,
            "deadline": (now + dt.timedelta(seconds=self.timeout_s)).isoformat(), "hops": [self.node_id],
            "consumer": principal.department_code, "subject": principal.subject,
            "roles": sorted(principal.roles & {"consumer", "platform"}), **fields}
        body = _sign(REQUEST_CONTEXT, document, self.signer, "request")
        try:
            reply = self.call(hop, body, self.timeout_s)
        except (TimeoutError, ConnectionError) as error:
            raise REMOTE_REFUSALS["DEADLINE_EXCEEDED" if isinstance(error, TimeoutError) else "UNAVAILABLE"](
                origin_node, str(error)) from None
        answer, problem = _open(ANSWER_CONTEXT, reply, "answer", self.peers)
        if problem is None and (answer.get("from") != hop or answer.get("id") != request_id):
            problem = f"the answer is not node {hop}'s to request {request_id}"
        if problem is None and hop != origin_node:
            problem = check_chain(answer, [self.node_id], origin_node, request_id, self.peers)
        if problem is not None:
            raise RemoteUnavailable(origin_node, f"answer refused: {problem}")
        status = str(answer.get("status", ""))
        if status != "OK":
            raise REMOTE_REFUSALS.get(status, RemoteUnavailable)(origin_node, str(answer.get("message", status)))
        return answer, now

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

    def handle(self, body: bytes) -> bytes:
        try:
            is_check = json.loads(body)["request"]["format"] == "exnode-check/1"
        except (ValueError, KeyError, TypeError):
            is_check = False
        return self.answer_check(body) if is_check else self.answer_request(body)

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
        now = self.clock()
        document, problem = _open(REQUEST_CONTEXT, body, "request", self.peers)
        request_id = str(document.get("id", ""))[:64] or uuid.uuid4().hex
        requester = str(document.get("from", ""))[:128]
        kind = "query" if document.get("kind") == "query" else "verify"
        action = "rpc/QueryRecords" if kind == "query" else "rpc/VerifyClaim"
        if problem is not None:
            return self._answer(document, "PERMISSION_DENIED", problem, {})
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
            elif str(document.get("to") or self.node_id) != self.node_id:
                action = "rpc/Relay"
                status, message, fields = self._relay(document, resource, deadline, now)
            else:
                try:
                    if kind == "query":
                        queried = self.query.query_records(principal, resource, keys, request_id, seal_key)
                    else:
                        answer = self.query.verify_claim(principal, request)
                except Exception as error:
                    code = self.status_of(error)
                    if code is None:
                        raise self.transient(f"{type(error).__name__}: {error}") from error
                    status, message = code, str(error)
                else:
                    status = "OK"
                    if kind == "query":
                        message = queried.audit_detail()
                        fields = {"grant": queried.grant_id, "sealing": queried.sealing,
                                  "request_id": queried.request_id, "results": [
                                      {"index": a.index, "key_hash": a.key_hash, "found": a.found,
                                       "record_id": a.record_id, "sequence": a.sequence, "payload": a.payload,
                                       "disputed": a.disputed, "sealed": base64.b64encode(a.sealed).decode()}
                                      for a in queried.answers]}
                    else:
                        message = answer.audit_detail()
                        fields = {"verdict": answer.verdict.file(answer.request), "used_today": answer.used_today,
                                  "daily_quota": answer.grant.daily_quota}
        reply = self._answer(document, status, message, fields)
        with self.uow(write=True) as uow:
            if uow.verifications.stored_answer(request_id) is None:
                uow.verifications.store_answer(request_id, requester, reply, now)
                uow.commit()
        self.audit_writer.append([AuditRecord(
            at=now, request_id=request_id, subject=principal.subject if principal else requester,
            department_code=principal.department_code if principal else "",
            roles=tuple(sorted(principal.roles)) if principal else (), action=action,
            target=f"resource:{document.get('resource', '')}"[:200], result=status,
            peer=f"node:{requester}"[:100], detail=message[:2000])])
        return reply

    def _relay(self, document: Mapping[str, Any], resource: str, deadline: dt.datetime, now: dt.datetime
               ) -> tuple[str, str, dict[str, Any]]:
        """Pass a request for a node further down on to the next hop, signed by this node (its chain of hops
        grows by one), and its answer back with the answer itself inside, so the requester checks every hop.
        The answering node applies its own grants; this node decides only the route."""
        to = str(document["to"])
        hops = [str(h) for h in document.get("hops") or [document.get("from")]]
        with self.uow() as uow:
            origin, hop = uow.catalog.route(resource)
        if origin != to:
            held = f"held by node {origin}" if origin else "not a foreign entry"
            return "FAILED_PRECONDITION", (f"node {self.node_id} has no route to node {to} for {resource} "
                                           f"(here it is {held})"), {}
        if self.node_id in hops or hop in hops:
            return "FAILED_PRECONDITION", f"a routing loop: {' → '.join(hops)} → {self.node_id} → {hop}", {}
        if self.forward is None:
            return "UNAVAILABLE", f"node {self.node_id} does not talk to other nodes", {}
        forwarded = {**document, "from": self.node_id, "hops": [*hops, self.node_id]}
        remaining = (deadline - now).total_seconds() * 0.9  # time for this node's answer to travel back
        try:
            reply = self.forward(hop, _sign(REQUEST_CONTEXT, forwarded, self.signer, "request"), remaining)
        except TimeoutError as error:
            return "DEADLINE_EXCEEDED", f"via node {self.node_id}: {error}", {}
        except ConnectionError as error:
            return "UNAVAILABLE", f"via node {self.node_id}: {error}", {}
        inner, problem = _open(ANSWER_CONTEXT, reply, "answer", self.peers)
        if problem is None and (inner.get("from") != hop or inner.get("id") != document.get("id")):
            problem = f"the answer is not node {hop}'s to request {document.get('id')}"
        if problem is not None:
            return "UNAVAILABLE", f"via node {self.node_id}: answer of node {hop} refused: {problem}", {}
        fields = {k: inner[k] for k in PASSED_ON if k in inner and k not in ("status", "message")}
        fields["hops"] = inner.get("hops") or [*forwarded["hops"], hop]
        fields["relayed"] = json.loads(reply)
        return str(inner.get("status", "")), str(inner.get("message", "")), fields

    def _answer(self, request: Mapping[str, Any], status: str, message: str, fields: dict[str, Any]) -> bytes:
        document = {"format": "exnode-rpc-answer/1", "id": str(request.get("id", "")), "from": self.node_id,
                    "to": str(request.get("from", "")), "status": status, "message": message,
                    "at": self.clock().isoformat(), **fields}
        return _sign(ANSWER_CONTEXT, document, self.signer, "answer")
