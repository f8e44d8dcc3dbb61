"""The reference client of the nightly pull (``exnode pull``), as the ministry runs it from cron.

It trusts nothing it has not verified: every batch's records must hash to the batch's Merkle root, the
root must carry a valid signature of the node's published keys over the batch's place in the pull (index,
cursors before and after, record count), batches must follow one another without a hole, and the
manifest must sign the same range, count and root over all records of its stream. A verified batch is
written into a staging directory (``DIR/.pull-staging``) and only then acknowledged; after the manifest
verifies, the staging directory is renamed into ``DIR/pull-…`` in one step. Anything that fails
verification stops the pull with PullProblem naming it, and nothing unverified is ever written.

A pull that breaks off leaves its verified batches staged; the next run verifies them again (files can be
edited between runs), discards the first that fails and every one after it, fetches those again
(``replay`` from the last batch that verified), continues after the rest and publishes the whole pull
once the manifest of the final stream verifies. The published directory carries every batch's signed
fields and that manifest, so ``node.clients.pull_evidence.verify_published`` re-checks the whole chain offline.
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

from node.clients.pull_evidence import (
    MANIFEST_FILE,
    BatchEntry,
    Manifest,
    batch_file_name,
    check_batch_file,
    check_link,
    check_manifest_covers,
    check_signature,
    describe,
    encode_records,
    starts_the_pull,
)
from security import merkle
from security.errors import SecurityError
from security.keys import PublicKey
from security.pull import MANIFEST_VERSION, batch_signing_input
from security.sealing import ConsumerPrivateKey, sealing_context, unpack_records
from security.timestamps import REPLAY_LEEWAY

STAGING = ".pull-staging"
STATE_FILE = "state.json"

Report = Callable[[str], None]
"""Where the client says what it discarded and why: one line each."""


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
    problem = check_signature(keys, kid, message, signature, node)
    if problem is not None:
        raise PullProblem(f"{what}: {problem}")


def _write_atomically(path: Path, chunks: Sequence[bytes]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        file.writelines(chunks)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


class _Staging:
    """The verified, acknowledged batches of a pull not yet published.

    Nothing staged is trusted because an earlier run verified it: on load every staged batch is checked
    again against its signed entry in ``state.json`` (records → root → signature, and the cursor chain from
    ``since``). The first that fails is discarded with every batch after it, and so is any file the state
    does not name; ``discarded`` then tells the pull to fetch again from the last batch that verified.
    """

    def __init__(self, out: Path, since: str, trusted: TrustedNode, report: Report) -> None:
        self.directory = out / STAGING
        self.since = since
        self.node_id = trusted.node_id
        self.platform = ""
        self.entries: list[BatchEntry] = []
        self.discarded = False
        if self.directory.exists():
            self._load(trusted.keys, report)

    def _load(self, keys: Mapping[str, PublicKey], report: Report) -> None:
        path = self.directory / STATE_FILE
        batch_files = sorted(p.name for p in self.directory.glob("batch-*"))
        if not path.exists():
            if batch_files:
                report(f"{path} is missing: the {len(batch_files)} staged batch files are discarded, fetching them "
                       "again")
                self.discarded = True
            self.reset()
            return
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as error:
            report(f"{path} is unreadable ({error}): the {len(batch_files)} staged batch files are discarded, "
                   "fetching them again")
            self.discarded = True
            self.reset()
            return
        if state.get("since") != self.since:
            raise PullProblem(f"{self.directory} holds an unfinished pull since cursor {state.get('since')!r}; "
                              "finish it with that --since, or remove the directory")
        raw_batches = state.get("batches") if isinstance(state.get("batches"), list) else []
        platform = state.get("platform") if isinstance(state.get("platform"), str) else ""
        named = {raw.get("file") for raw in raw_batches if isinstance(raw, dict) and isinstance(raw.get("file"), str)}
        entries: list[BatchEntry] = []
        for number, raw in enumerate(raw_batches):
            entry = None
            try:
                entry = BatchEntry.from_dict(raw)
            except ValueError as error:
                problem: str | None = f"its entry in {STATE_FILE} is malformed: {error}"
            else:
                entries.append(entry)
                problem = self._first_problem(entries, number, str(state.get("node")), platform, keys)
            if problem is not None:
                later = len(raw_batches) - number - 1
                report(f"staged {describe(number, entry)}: {problem}: discarded"
                       + (f" with the {later} staged batch{'es' if later > 1 else ''} after it" if later else "")
                       + ", fetching again from the node")
                self.discarded = True
                del entries[number:]
                break
        self.platform = platform if entries else ""
        self.entries = entries
        kept = {STATE_FILE, *(e.file for e in entries)}
        strangers = sorted(p.name for p in self.directory.iterdir() if p.name not in kept and p.name not in named)
        if strangers:
            report(f"{', '.join(strangers)} in {self.directory}: not part of the staged pull, removed")
            self.discarded = True  # they may be batches the state lost: fetch from the last kept one, to be sure
        for stale in self.directory.iterdir():
            if stale.name not in kept:
                _remove(stale)
        if self.discarded:
            self.save()

    def _first_problem(self, entries: list[BatchEntry], number: int, node: str, platform: str,
                       keys: Mapping[str, PublicKey]) -> str | None:
        if node != self.node_id:
            return f"{STATE_FILE} says it was pulled from node {node!r}, the trusted keys are node {self.node_id!r}'s"
        if not platform:
            return f"{STATE_FILE} names no platform"
        if entries[number].file != batch_file_name(number):
            return f"its entry names file {entries[number].file}, batch {number} is {batch_file_name(number)}"
        problem = check_link(entries, number, self.since, self.node_id, platform)
        if problem is None:
            problem, _ = check_batch_file(self.directory, entries[number], self.node_id, platform, keys)
        return problem

    @property
    def last(self) -> str:
        """Where the staged batches end: the next batch starts here."""
        return self.entries[-1].to_cursor if self.entries else self.since

    @property
    def staged(self) -> int:
        return len(self.entries)

    def truncate_after(self, cursor: str) -> bool:
        """Keep the staged batches up to the one ending at ``cursor`` (where the node resumes) and drop later
        ones, which the node will send again. False if none ends there."""
        ends = [entry.to_cursor for entry in self.entries]
        if cursor not in ends:
            return False
        keep = ends.index(cursor) + 1
        for entry in self.entries[keep:]:
            (self.directory / entry.file).unlink(missing_ok=True)
        del self.entries[keep:]
        self.save()
        return True

    def reset(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.entries = []
        self.platform = ""

    def add(self, batch: pb.PullBatch, platform: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = batch_file_name(self.staged)
        _write_atomically(self.directory / name, encode_records(batch.records))
        self.platform = platform
        self.entries.append(BatchEntry(name, batch.index, batch.from_cursor, batch.to_cursor, len(batch.records),
                                       batch.merkle_root, batch.key_id, batch.signature,
                                       tuple(i for i in batch.disputed if i < len(batch.records))))
        self.save()

    def _state(self) -> dict[str, Any]:
        return {"since": self.since, "node": self.node_id, "platform": self.platform,
                "batches": [entry.to_dict() for entry in self.entries]}

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.directory / STATE_FILE,
                          [json.dumps(self._state(), ensure_ascii=False, indent=1).encode("utf-8")])

    def publish(self, out: Path, manifest: pb.Manifest, report: Report) -> Path:
        """Write manifest.json and rename the directory into place, after checking once more (no file reads:
        every batch was verified before it was staged, or again when this run began) that the chain holds
        and that nothing else lies in the directory."""
        signed = manifest_of(manifest)
        for number in range(self.staged):
            problem = check_link(self.entries, number, self.since, self.node_id, self.platform)
            if problem is not None:
                raise PullProblem(f"{describe(number, self.entries[number])}: {problem}")
        problem = check_manifest_covers(self.entries, signed, self.since, self.node_id, self.platform)
        if problem is not None:
            raise PullProblem(problem)
        document = {
            "node": self.node_id, "platform": self.platform, "since": self.since, "next_cursor": manifest.to_cursor,
            "record_count": sum(entry.record_count for entry in self.entries), "batch_count": self.staged,
            "batches": [entry.to_dict() for entry in self.entries], "manifest": signed.to_dict(),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / STATE_FILE).unlink(missing_ok=True)
        expected = {entry.file for entry in self.entries}
        strangers = sorted(p.name for p in self.directory.iterdir() if p.name not in expected)
        if strangers:
            report(f"{', '.join(strangers)} in {self.directory}: not part of the pull, removed before publishing")
            for name in strangers:
                _remove(self.directory / name)
        _write_atomically(self.directory / MANIFEST_FILE,
                          [json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")])
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = out / f"pull-{stamp}"
        os.replace(self.directory, target)
        return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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


def manifest_of(manifest: pb.Manifest) -> Manifest:
    """The stream's manifest as manifest.json keeps it (version 0 on the wire: a node before version 2)."""
    return Manifest(manifest.from_cursor, manifest.to_cursor, manifest.record_count, manifest.batch_count,
                    manifest.merkle_root, manifest.until_day, manifest.key_id, manifest.signature,
                    manifest.signed_at, manifest.version or 1)


def check_signed_time(manifest: Manifest, started: dt.datetime) -> None:
    """A live pull's manifest must have been signed during this pull: one signed before it began is a
    replayed manifest (an earlier pull of the same range), and one without a signed time (version 1) cannot
    be told from one. The leeway is for the clocks of node and client (``security.timestamps.REPLAY_LEEWAY``)."""
    if manifest.version < MANIFEST_VERSION:
        raise PullProblem(f"manifest: version {manifest.version} carries no signed time, so a replayed manifest "
                          "cannot be told from a fresh one; the node must sign version 2 manifests")
    try:
        signed_at = manifest.signed_time()
    except ValueError as error:
        raise PullProblem(f"manifest: signed_at is not an ISO 8601 UTC time ({error})") from None
    assert signed_at is not None
    if signed_at < started - REPLAY_LEEWAY:
        raise PullProblem(f"manifest: signed at {manifest.signed_at}, before this pull began "
                          f"({started.isoformat(timespec='seconds')}): a replayed manifest")


def pull(call: PullCall, trusted: TrustedNode, out: Path, *, since: str = "", replay: bool = False,
         until_day: str = "", acknowledge: bool = True, report: Report | None = None,
         on_batch: Callable[[int], None] | None = None, key: ConsumerPrivateKey | None = None,
         clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> PullOutcome:
    """Run one pull into ``out``; raises PullProblem (or grpc.RpcError from the node) on failure.

    ``clock``: the client's time, against which the manifest's signed time must fall within this pull (a
    test whose node runs on a fixed clock gives the client the same clock).

    ``report`` gets one line for each staged batch or file this run discarded (the CLI prints it on stderr);
    ``on_batch`` the record count of each batch verified and staged (the CLI's progress bar).
    """
    out.mkdir(parents=True, exist_ok=True)
    report = report or (lambda line: None)
    staging = _Staging(out, since, trusted, report)
    if staging.discarded:  # fetch again from the last batch that verified, wherever the node's ack is
        start = pb.PullStart(cursor=staging.last, replay=True, until_day=until_day, sealed=key is not None)
    else:
        start = pb.PullStart(cursor=since, replay=replay, until_day=until_day, sealed=key is not None)
    requests = _Requests(start)
    started = clock()
    responses = call(iter(requests))
    try:
        return _receive(responses, requests, staging, trusted, out, until_day, acknowledge, report,
                        on_batch or (lambda count: None), key, started)
    finally:
        requests.close()
        cancel = getattr(responses, "cancel", None)
        if cancel is not None:
            cancel()


def _receive(responses: Iterator[pb.PullItem], requests: _Requests, staging: _Staging, trusted: TrustedNode,
             out: Path, until_day: str, acknowledge: bool, report: Report, on_batch: Callable[[int], None],
             key: ConsumerPrivateKey | None = None, started: dt.datetime | None = None) -> PullOutcome:
    node, keys = trusted.node_id, trusted.keys
    started = started or dt.datetime.now(dt.UTC)
    first = next(responses, None)
    if first is None or first.WhichOneof("item") != "header":
        raise PullProblem("the node did not open the pull with a header")
    header = first.header
    if header.node_id != node:
        raise PullProblem(f"header: the node says it is {header.node_id!r}; the trusted keys are node {node!r}'s")
    platform = header.platform
    resumed = False
    if staging.truncate_after(header.from_cursor):
        resumed = True  # an acknowledgement may not have reached the node: it sends those batches again
    elif not header.resumed:
        staging.reset()
        if not starts_the_pull(header.from_cursor, staging.since, node, platform):
            raise PullProblem("header: the node starts the stream elsewhere than the requested cursor")
    else:
        raise PullProblem(f"header: the node resumes after batches acknowledged earlier (from {header.from_cursor}) "
                          f"but {out / STAGING} does not hold them; run again with --replay to fetch from --since")
    if staging.platform and staging.platform != platform:
        raise PullProblem(f"header: pulling for {platform!r}, the staged batches are {staging.platform!r}'s")
    accumulator = merkle.RootAccumulator()
    expected_from = header.from_cursor
    batches = 0
    for item in responses:
        kind = item.WhichOneof("item")
        if kind == "batch":
            batch = item.batch
            what = f"batch {staging.staged} ({batch_file_name(staging.staged)})"
            if batch.index != batches:
                raise PullProblem(f"{what}: index {batch.index}, expected {batches} (a batch is missing or repeated)")
            if batch.from_cursor != expected_from:
                raise PullProblem(f"{what}: does not start where the previous batch ended (a hole in the pull)")
            if batch.sealing:  # sealed to our key: open, then verify the records as they came
                if key is None:
                    raise PullProblem(f"{what}: sealed to key {batch.sealing.get('x-exnode-enc-kid')!r}; give its "
                                      "private key to open it")
                try:
                    opened = unpack_records(key.open(dict(batch.sealing), sealing_context(
                        f"pull {batch.to_cursor}", batch.sealing.get("x-exnode-enc-kid", "")),
                        f"batch {batch.index}", batch.sealed_records))
                except SecurityError as error:
                    raise PullProblem(f"{what}: {error}") from None
                batch = pb.PullBatch(index=batch.index, from_cursor=batch.from_cursor, to_cursor=batch.to_cursor,
                                     records=opened, merkle_root=batch.merkle_root, key_id=batch.key_id,
                                     signature=batch.signature)
            elif key is not None:
                raise PullProblem(f"{what}: came in clear although the pull asked for sealed batches")
            leaf_hashes = [merkle.leaf_hash(record) for record in batch.records]
            root = merkle.root_from_leaf_hashes(leaf_hashes)
            if root != batch.merkle_root:
                raise PullProblem(f"{what}: the records hash to {root.hex()}, the batch says "
                                  f"{batch.merkle_root.hex()} (a record was changed, added, removed or reordered)")
            _verify(keys, batch.key_id, batch_signing_input(
                node_id=node, platform=platform, index=batch.index, from_cursor=batch.from_cursor,
                to_cursor=batch.to_cursor, record_count=len(batch.records), root=root), batch.signature, what, node)
            accumulator.add_leaf_hashes(leaf_hashes, root)
            staging.add(batch, platform)
            if acknowledge:
                requests.ack(batch.to_cursor)
            expected_from = batch.to_cursor
            batches += 1
            on_batch(len(batch.records))
        elif kind == "manifest":
            manifest = item.manifest
            if manifest.from_cursor != header.from_cursor:
                raise PullProblem("manifest: its range does not start where the pull started")
            records = sum(entry.record_count for entry in staging.entries[staging.staged - batches:])
            if manifest.record_count != records or manifest.batch_count != batches:
                raise PullProblem(f"manifest: says {manifest.record_count} records in {manifest.batch_count} batches, "
                                  f"{records} records in {batches} batches arrived")
            if manifest.merkle_root != accumulator.root:
                raise PullProblem(f"manifest: the records hash to {accumulator.root.hex()}, the manifest says "
                                  f"{manifest.merkle_root.hex()}")
            if manifest.until_day != until_day:
                raise PullProblem(f"manifest: covers until_day {manifest.until_day!r}, {until_day!r} was asked for")
            signed = manifest_of(manifest)
            _verify(keys, manifest.key_id, signed.signing_input(node, platform), manifest.signature, "manifest", node)
            check_signed_time(signed, started)
            staging.platform = platform
            total = sum(entry.record_count for entry in staging.entries)
            count = staging.staged
            directory = staging.publish(out, manifest, report)
            if acknowledge:
                requests.ack(manifest.to_cursor)
            requests.close()
            for _ in responses:  # the node ends the stream once it has stored the acknowledgement
                pass
            return PullOutcome(directory, manifest.to_cursor, total, count, resumed)
        else:
            raise PullProblem(f"unexpected {kind or 'empty'} message in the pull stream")
    raise PullProblem("the stream ended before the manifest arrived; the next pull resumes after the last "
                      "acknowledged batch")
