"""The reference client of the nightly pull (``exnode pull``), as the ministry runs it from cron.

It trusts nothing it has not verified: every batch's records must hash to the batch's Merkle root, the
root must carry a valid signature of the node's published keys over the batch's place in the pull (index,
cursors before and after, record count), batches must follow one another without a hole, and the
manifest must sign the same range, count and root over all records. A verified batch is written into a
staging directory (``DIR/.pull-staging``) and only then acknowledged; after the manifest verifies, the
staging directory is renamed into ``DIR/pull-…`` in one step. Anything that fails verification stops the
pull with PullProblem naming it, and nothing unverified is ever written.

A pull that breaks off leaves its verified batches staged; the next run continues after them (the node
resumes from the last acknowledged batch) and publishes the whole pull once its manifest verifies.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exnode.v1 import exchange_pb2 as pb

from security import merkle
from security.keys import PublicKey
from security.pull import batch_signing_input, manifest_signing_input

STAGING = ".pull-staging"
STATE_FILE = "state.json"


class PullProblem(Exception):
    """The pull cannot be trusted or completed; the message names what failed (exit status 1)."""


@dataclass(frozen=True)
class PullOutcome:
    directory: Path
    next_cursor: str
    records: int
    batches: int
    resumed: bool


@dataclass(frozen=True)
class TrustedNode:
    node_id: str
    keys: Mapping[str, PublicKey]


def trusted_from_document(document: Mapping[str, Any]) -> TrustedNode:
    """The node's published keys (``keys/public-keys.json`` or ListPublicKeys as JSON)."""
    try:
        keys = {k["kid"]: PublicKey(k["kid"], k["algorithm"], k["public_pem"], k.get("created_at", ""))
                for k in document["keys"]}
        return TrustedNode(str(document["node_id"]), keys)
    except (KeyError, TypeError) as error:
        raise PullProblem(f"keys: not a published keys document ({error})") from None


def _verify(keys: Mapping[str, PublicKey], kid: str, message: bytes, signature: bytes, what: str, node: str) -> None:
    key = keys.get(kid)
    if key is None:
        raise PullProblem(f"{what}: signed with key {kid!r}, which node {node!r} does not publish")
    if not key.verify(message, signature):
        raise PullProblem(f"{what}: the signature does not verify with key {kid} of node {node!r}")


def _write_atomically(path: Path, chunks: Sequence[bytes]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        file.writelines(chunks)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


class _Staging:
    """The verified, acknowledged batches of a pull not yet published."""

    def __init__(self, out: Path, since: str) -> None:
        self.directory = out / STAGING
        self.since = since
        self.state: dict[str, Any] = {"since": since, "node": "", "platform": "", "batches": [], "last": since}
        path = self.directory / STATE_FILE
        if path.exists():
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise PullProblem(f"{path}: unreadable staging state ({error}); remove {self.directory}") from None
            if state.get("since") != since:
                raise PullProblem(f"{self.directory} holds an unfinished pull since cursor {state.get('since')!r}; "
                                  "finish it with that --since, or remove the directory")
            self.state = state

    @property
    def last(self) -> str:
        return str(self.state["last"])

    @property
    def staged(self) -> int:
        return len(self.state["batches"])

    def truncate_after(self, cursor: str) -> bool:
        """Keep the staged batches up to the one ending at ``cursor`` (the node's last stored
        acknowledgement) and drop later ones, which the node will send again. False if none ends there."""
        ends = [b["to_cursor"] for b in self.state["batches"]]
        if cursor not in ends:
            return False
        keep = ends.index(cursor) + 1
        for entry in self.state["batches"][keep:]:
            (self.directory / entry["file"]).unlink(missing_ok=True)
        del self.state["batches"][keep:]
        self.state["last"] = cursor
        self.save()
        return True

    def reset(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.state = {"since": self.since, "node": "", "platform": "", "batches": [], "last": self.since}

    def add(self, batch: pb.PullBatch, platform: str, node_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        number = self.staged + 1
        name = f"batch-{number:06d}.jsonl"
        records = batch.records
        _write_atomically(self.directory / name, [b"\n".join(records), b"\n"] if records else [])
        self.state["node"], self.state["platform"] = node_id, platform
        self.state["batches"].append({
            "file": name, "index": batch.index, "from_cursor": batch.from_cursor, "to_cursor": batch.to_cursor,
            "record_count": len(records), "merkle_root": batch.merkle_root.hex(), "key_id": batch.key_id,
            "signature": batch.signature.hex()})
        self.state["last"] = batch.to_cursor
        self.save()

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.directory / STATE_FILE,
                          [json.dumps(self.state, ensure_ascii=False, indent=1).encode("utf-8")])

    def publish(self, out: Path, manifest: pb.Manifest) -> Path:
        records = sum(b["record_count"] for b in self.state["batches"])
        document = {
            "node": self.state["node"], "platform": self.state["platform"], "since": self.since,
            "next_cursor": manifest.to_cursor, "record_count": records, "batches": self.state["batches"],
            "manifest": {"from_cursor": manifest.from_cursor, "to_cursor": manifest.to_cursor,
                         "record_count": manifest.record_count, "batch_count": manifest.batch_count,
                         "merkle_root": manifest.merkle_root.hex(), "until_day": manifest.until_day,
                         "key_id": manifest.key_id, "signature": manifest.signature.hex()},
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.directory / "manifest.json",
                          [json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")])
        (self.directory / STATE_FILE).unlink(missing_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = out / f"pull-{stamp}"
        os.replace(self.directory, target)
        return target


class _Requests:
    """The client's side of the stream: start, then acknowledgements, fed from the receiving loop."""

    def __init__(self, start: pb.PullStart) -> None:
        self._queue: queue.Queue[pb.PullRequest | None] = queue.Queue()
        self._queue.put(pb.PullRequest(start=start))

    def ack(self, cursor: str) -> None:
        self._queue.put(pb.PullRequest(ack=pb.PullAck(cursor=cursor)))

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[pb.PullRequest]:
        while True:
            message = self._queue.get()
            if message is None:
                return
            yield message


PullCall = Callable[[Iterator[pb.PullRequest]], Iterator[pb.PullItem]]
"""``lambda requests: stub.Pull(requests, metadata=…)``; tests wrap it to tamper with what arrives."""


def pull(call: PullCall, trusted: TrustedNode, out: Path, *, since: str = "", replay: bool = False,
         until_day: str = "", acknowledge: bool = True) -> PullOutcome:
    """Run one pull into ``out``; raises PullProblem (or grpc.RpcError from the node) on failure."""
    out.mkdir(parents=True, exist_ok=True)
    staging = _Staging(out, since)
    requests = _Requests(pb.PullStart(cursor=since, replay=replay, until_day=until_day))
    responses = call(iter(requests))
    try:
        return _receive(responses, requests, staging, trusted, out, since, until_day, replay, acknowledge)
    finally:
        requests.close()
        cancel = getattr(responses, "cancel", None)
        if cancel is not None:
            cancel()


def _receive(responses: Iterator[pb.PullItem], requests: _Requests, staging: _Staging, trusted: TrustedNode,
             out: Path, since: str, until_day: str, replay: bool, acknowledge: bool) -> PullOutcome:
    node, keys = trusted.node_id, trusted.keys
    first = next(responses, None)
    if first is None or first.WhichOneof("item") != "header":
        raise PullProblem("the node did not open the pull with a header")
    header = first.header
    if header.node_id != node:
        raise PullProblem(f"header: the node says it is {header.node_id!r}; the trusted keys are node {node!r}'s")
    platform = header.platform
    resumed = False
    if not header.resumed:
        if staging.staged:
            staging.reset()
    elif staging.truncate_after(header.from_cursor):
        resumed = True  # an acknowledgement may not have reached the node: it sends those batches again
    else:
        raise PullProblem(f"header: the node resumes after batches acknowledged earlier (from {header.from_cursor}) "
                          f"but {out / STAGING} does not hold them; run again with --replay to fetch from --since")
    if staging.state["platform"] and staging.state["platform"] != platform:
        raise PullProblem(f"header: pulling for {platform!r}, the staged batches are {staging.state['platform']!r}'s")
    accumulator = merkle.RootAccumulator()
    expected_from = header.from_cursor
    records = batches = 0
    for item in responses:
        kind = item.WhichOneof("item")
        if kind == "batch":
            batch = item.batch
            what = f"batch {batches} (staged as {staging.staged + 1})"
            if batch.index != batches:
                raise PullProblem(f"{what}: index {batch.index}, expected {batches} (a batch is missing or repeated)")
            if batch.from_cursor != expected_from:
                raise PullProblem(f"{what}: does not start where the previous batch ended (a hole in the pull)")
            leaf_hashes = [merkle.leaf_hash(record) for record in batch.records]
            root = merkle.root_from_leaf_hashes(leaf_hashes)
            if root != batch.merkle_root:
                raise PullProblem(f"{what}: the records hash to {root.hex()}, the batch says "
                                  f"{batch.merkle_root.hex()} (a record was changed, added, removed or reordered)")
            _verify(keys, batch.key_id, batch_signing_input(
                node_id=node, platform=platform, index=batch.index, from_cursor=batch.from_cursor,
                to_cursor=batch.to_cursor, record_count=len(batch.records), root=root), batch.signature, what, node)
            accumulator.add_leaf_hashes(leaf_hashes, root)
            staging.add(batch, platform, node)
            if acknowledge:
                requests.ack(batch.to_cursor)
            expected_from = batch.to_cursor
            records += len(batch.records)
            batches += 1
        elif kind == "manifest":
            manifest = item.manifest
            if manifest.from_cursor != header.from_cursor:
                raise PullProblem("manifest: its range does not start where the pull started")
            if manifest.record_count != records or manifest.batch_count != batches:
                raise PullProblem(f"manifest: says {manifest.record_count} records in {manifest.batch_count} batches, "
                                  f"{records} records in {batches} batches arrived")
            if manifest.merkle_root != accumulator.root:
                raise PullProblem(f"manifest: the records hash to {accumulator.root.hex()}, the manifest says "
                                  f"{manifest.merkle_root.hex()}")
            if manifest.until_day != until_day:
                raise PullProblem(f"manifest: covers until_day {manifest.until_day!r}, {until_day!r} was asked for")
            _verify(keys, manifest.key_id, manifest_signing_input(
                node_id=node, platform=platform, from_cursor=manifest.from_cursor, to_cursor=manifest.to_cursor,
                record_count=manifest.record_count, batch_count=manifest.batch_count, root=manifest.merkle_root,
                until_day=manifest.until_day), manifest.signature, "manifest", node)
            staging.state["node"], staging.state["platform"] = node, platform
            total = sum(b["record_count"] for b in staging.state["batches"])
            directory = staging.publish(out, manifest)
            if acknowledge:
                requests.ack(manifest.to_cursor)
            requests.close()
            for _ in responses:  # the node ends the stream once it has stored the acknowledgement
                pass
            return PullOutcome(directory, manifest.to_cursor, total, len(staging.state["batches"]), resumed)
        else:
            raise PullProblem(f"unexpected {kind or 'empty'} message in the pull stream")
    raise PullProblem("the stream ended before the manifest arrived; the next pull resumes after the last "
                      "acknowledged batch")
