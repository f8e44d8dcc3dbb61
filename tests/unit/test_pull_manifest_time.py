"""A pull manifest signs when it was signed (version 2): a manifest replayed from an earlier pull of the same
range is refused by its date, a version 1 manifest (published before) still verifies offline, and neither
version's signature passes for the other's."""

from __future__ import annotations

import datetime as dt

import pytest

from node.clients.pull import PullProblem, check_signed_time
from node.clients.pull_evidence import Manifest
from security.keys import KeyStore

ROOT = bytes(range(32))


def manifest(signer, signed_at: str, version: int = 2) -> Manifest:
    unsigned = Manifest("pc1.a", "pc1.b", 3, 1, ROOT, "", signer.kid, b"", signed_at, version)
    return Manifest(**{**unsigned.__dict__, "signature": signer.sign(unsigned.signing_input("n1", "p1"))})


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return KeyStore.create(tmp_path_factory.mktemp("keys"))


def test_a_version_2_manifest_signs_its_time_and_a_version_1_manifest_still_verifies(keys: KeyStore):
    signer, public = keys.active, keys.public[keys.active.kid]
    new = manifest(signer, "2026-03-02T09:00:00.000+00:00")
    assert public.verify(new.signing_input("n1", "p1"), new.signature)
    moved = Manifest(**{**new.__dict__, "signed_at": "2026-03-02T10:00:00.000+00:00"})
    assert not public.verify(moved.signing_input("n1", "p1"), moved.signature)  # the time is signed
    downgraded = Manifest(**{**new.__dict__, "version": 1, "signed_at": ""})
    assert not public.verify(downgraded.signing_input("n1", "p1"), downgraded.signature)

    old = manifest(signer, "", version=1)
    read = Manifest.from_dict(old.to_dict())  # manifest.json written before version 2: no version field
    assert "version" not in old.to_dict() and read.version == 1 and read.signed_time() is None
    assert public.verify(read.signing_input("n1", "p1"), read.signature)
    assert Manifest.from_dict(new.to_dict()) == new


def test_a_live_pull_refuses_a_manifest_signed_before_it_began_or_without_a_signed_time(keys: KeyStore):
    started = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    check_signed_time(manifest(keys.active, (started + dt.timedelta(seconds=3)).isoformat()), started)
    check_signed_time(manifest(keys.active, (started - dt.timedelta(minutes=1)).isoformat()), started)  # clocks
    with pytest.raises(PullProblem, match="before this pull began.*a replayed manifest"):
        check_signed_time(manifest(keys.active, (started - dt.timedelta(hours=1)).isoformat()), started)
    with pytest.raises(PullProblem, match="version 1 carries no signed time"):
        check_signed_time(manifest(keys.active, "", version=1), started)


def test_a_manifest_with_a_garbled_or_zoneless_signing_time_is_malformed():
    for signed_at in ("yesterday", "2026-03-02T09:00:00"):
        data = Manifest("pc1.a", "pc1.b", 3, 1, ROOT, "", "k", b"\0", signed_at, 2).to_dict()
        with pytest.raises(ValueError, match="malformed"):
            Manifest.from_dict(data)
