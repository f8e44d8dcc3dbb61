"""A full disk under the node's SQLite database. The data directory is on a tmpfs of a few tens of MB
(mounted by the test: it needs root, as CI has; without it the test fails, saying so) that a file fills
up during ingest. `Ingest` then answers RESOURCE_EXHAUSTED with a message naming the disk and stores
nothing (the call's audit entry commits with the batch: never records stored under a refusal); nothing
acknowledged is lost, the audit chain has no hole, and once the file is removed the same node process
ingests the refused batches' records again, as fresh records."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from exnode.v1 import exchange_pb2_grpc
from sqlalchemy import func, select

from node.pipeline import provider_batch
from node.storage.database import make_engine
from node.storage.tables import records
from tests.fault.support import (
    LOW_INCOME,
    PROVIDER,
    Key,
    ServedNode,
    as_proto,
    delete_node_topology,
    exnode,
    low_income_record,
    platforms_toml,
    set_up_exchange,
)

pytestmark = [pytest.mark.rabbitmq]
SIZE_MB = 48
BATCH = 250


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A tmpfs of SIZE_MB, mounted for this test and unmounted after it."""
    mountpoint = Path(tempfile.mkdtemp(prefix="exnode-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0755", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, (f"cannot mount a {SIZE_MB} MB tmpfs at {mountpoint} (this test needs root): "
                                     f"{mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def fill(disk: Path) -> Path:
    """Write a file until the filesystem has no byte left (unbuffered: nothing is left to fail at close)."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(descriptor, b"\0" * size):
                    pass
    finally:
        os.close(descriptor)
    return filler


@pytest.mark.timeout(300)
def test_a_full_disk_refuses_ingest_naming_the_disk_and_ingest_resumes_once_space_is_freed(tmp_path: Path,
                                                                                          small_disk: Path):
    data = small_disk / "node"
    node_id = f"d{uuid.uuid4().hex[:10]}"
    init = exnode("init", "--data", str(data), "--sample", "--dev", "--node-id", node_id)
    assert init.returncode == 0, init.stderr
    (data / "platforms.toml").write_text(platforms_toml(), encoding="utf-8")
    served = ServedNode(data, tmp_path / "serve.log")  # the log is on the big disk
    try:
        served.start()
        key = Key()
        set_up_exchange(served.channel_as, key)
        stub = exchange_pb2_grpc.ExchangeServiceStub(served.channel_as(PROVIDER, ("provider",)))
        acknowledged: set[str] = set()
        sequence = 0

        def send(index: int) -> grpc.RpcError | None:
            nonlocal sequence
            numbers = range(sequence + 1, sequence + 1 + BATCH)
            batch = provider_batch(PROVIDER, LOW_INCOME, [low_income_record(n) for n in numbers], key,
                                   batch_id=f"full-{node_id}-{index}")
            try:
                answer = stub.Ingest(as_proto(batch), timeout=60)
            except grpc.RpcError as error:
                return error
            assert answer.accepted == BATCH, answer
            acknowledged.update(low_income_record(n).id for n in numbers)
            sequence += BATCH
            return None

        for index in range(8):
            assert send(index) is None
        filler = fill(small_disk)
        assert shutil.disk_usage(small_disk).free < 64 * 1024
        refusals: list[grpc.RpcError] = []
        for index in range(8, 200):
            error = send(index)
            if error is not None:
                refusals.append(error)
                if len(refusals) >= 3:
                    break
        assert refusals, "the node kept acknowledging batches on a full disk"
        for error in refusals:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
            assert "disk" in error.details() and str(small_disk) in error.details(), error.details()
        assert served.process is not None and served.process.poll() is None, "the node died on a full disk"

        filler.unlink()
        for index in range(200, 204):
            error = send(index)
            assert error is None, f"still refused after space was freed: {error.code()} {error.details()}"

        officer = served.token(PROVIDER, ("security_officer",))
        verified = exnode("audit", "verify", "--data", str(data), "--server", served.address, "--token", officer)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        log = served.log.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in log, served.log_tail(60)
        assert served.stop() == 0, served.log_tail()
        engine = make_engine(served.config.database_url)
        try:
            with engine.connect() as connection:
                stored = set(connection.execute(select(records.c.record_id)).scalars())
                count = connection.execute(select(func.count()).select_from(records)).scalar_one()
        finally:
            engine.dispose()
        assert acknowledged <= stored and count == len(stored) == len(acknowledged)
        print(f"\nfull disk: acknowledged={len(acknowledged)} stored={len(stored)} lost=0 duplicated=0; "
              f"{len(refusals)} refusals on the full disk: {refusals[0].code().name} {refusals[0].details()!r}; "
              f"accepted again at once after freeing space, without a restart")
    finally:
        served.close()
        delete_node_topology(node_id)
        os.sync()
