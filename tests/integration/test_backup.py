"""`exnode backup` / `exnode restore` against both databases (the real PostgreSQL for pg_dump/pg_restore):
a restored node is the same node (catalog, audit chain, keys with their permissions), a non-empty target
is refused unless forced, and a corrupt or incomplete backup is refused before anything changes.

The drill under load (a serving node, killed and restored) is tests/fault/test_backup_drill.py."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select, update

from node.cli import main
from node.config import load_config
from node.storage.database import make_engine
from node.storage.tables import audit_entries, resources

SAMPLE_RESOURCES = 58


def exnode(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (a subprocess per call would cost a second of imports each)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def node_data(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised node with the sample catalog on the parametrised database."""
    data = tmp_path / "node"
    if database_url.startswith("postgresql"):
        monkeypatch.setenv("EXNODE_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("EXNODE_DATABASE_URL", raising=False)
    code = main(["init", "--data", str(data), "--sample", "--dev", "--node-id", f"t{uuid.uuid4().hex[:10]}"])
    assert code == 0
    return data


def catalog_size(data: Path) -> int:
    engine = make_engine(load_config(data).database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(resources)).scalar_one()
    finally:
        engine.dispose()


def tamper_with_audit(data: Path) -> None:
    engine = make_engine(load_config(data).database_url)
    try:
        with engine.begin() as connection:
            connection.execute(update(audit_entries).where(audit_entries.c.sequence == 1).values(detail="edited"))
    finally:
        engine.dispose()


@pytest.fixture
def second_database(postgres_server: str) -> str:
    name = f"exnode_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_restored_node_has_its_catalog_audit_chain_and_keys(node_data: Path, tmp_path: Path, database_url: str,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              request: pytest.FixtureRequest):
    backup_dir = tmp_path / "backup"
    code, out, err = exnode(capsys, "backup", str(backup_dir), "--data", str(node_data), "--json")
    assert code == 0, err
    made = json.loads(out)
    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    assert made["database"] == kind and made["revision"]
    manifest = json.loads((backup_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["node_id"] == load_config(node_data).node.id
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700

    target = tmp_path / "restored"
    if kind == "postgresql":  # a fresh, empty database, as after losing the server
        monkeypatch.setenv("EXNODE_DATABASE_URL", request.getfixturevalue("second_database"))
    assert not list(backup_dir.rglob("kek-*.key")), "the key-encryption key stays out of a backup"
    code, out, err = exnode(capsys, "restore", str(backup_dir), "--data", str(target))
    assert code == 1 and err.count("\n") == 1 and "key-encryption key" in err and "--keys" in err, err
    assert not target.exists(), "a refusal created the data directory"
    code, out, err = exnode(capsys, "restore", str(backup_dir), "--data", str(target), "--keys",
                            str(node_data / "keys"))
    assert code == 0, err

    assert catalog_size(target) == SAMPLE_RESOURCES
    code, out, err = exnode(capsys, "audit", "verify", "--local", "--data", str(target))
    assert code == 0 and "audit verify: OK" in out, out + err
    original_keys = sorted(p.name for p in (node_data / "keys").iterdir())
    assert sorted(p.name for p in (target / "keys").iterdir()) == original_keys
    for key in (target / "keys").glob("*.key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert key.read_bytes() == (node_data / "keys" / key.name).read_bytes()
    assert stat.S_IMODE((target / "keys").stat().st_mode) == 0o700
    assert (target / "exnode.toml").read_bytes() == (node_data / "exnode.toml").read_bytes()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_restore_into_a_non_empty_data_directory_refuses_unless_forced(node_data: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]):
    backup_dir = tmp_path / "backup"
    assert exnode(capsys, "backup", str(backup_dir), "--data", str(node_data))[0] == 0
    tamper_with_audit(node_data)
    assert exnode(capsys, "audit", "verify", "--local", "--data", str(node_data))[0] == 1
    stray = node_data / "notes.txt"
    stray.write_text("the operator's notes", encoding="utf-8")
    database_before = (node_data / "exnode.db").read_bytes()

    code, out, err = exnode(capsys, "restore", str(backup_dir), "--data", str(node_data), "--keys",
                            str(node_data / "keys"))
    assert code == 1
    assert err.count("\n") == 1 and "is not empty" in err and "--force" in err, err
    assert stray.exists() and (node_data / "exnode.db").read_bytes() == database_before, "a refusal changed files"

    code, out, err = exnode(capsys, "restore", str(backup_dir), "--data", str(node_data), "--force", "--keys",
                            str(node_data / "keys"))
    assert code == 0, err
    assert not stray.exists(), "a forced restore leaves the directory as the backup had it"
    code, out, err = exnode(capsys, "audit", "verify", "--local", "--data", str(node_data))
    assert code == 0, out + err


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_restore_over_a_non_empty_postgresql_database_refuses_unless_forced(node_data: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]):
    backup_dir = tmp_path / "backup"
    assert exnode(capsys, "backup", str(backup_dir), "--data", str(node_data))[0] == 0
    tamper_with_audit(node_data)
    target = tmp_path / "restored"  # an empty directory, but the configured database is the live one

    code, out, err = exnode(capsys, "restore", str(backup_dir), "--data", str(target), "--keys",
                            str(node_data / "keys"))
    assert code == 1 and "is not empty" in err and "--force" in err, err
    assert not target.exists(), "a refusal created the data directory"

    code, out, err = exnode(capsys, "restore", str(backup_dir), "--data", str(target), "--force", "--keys",
                            str(node_data / "keys"))
    assert code == 0, err
    code, out, err = exnode(capsys, "audit", "verify", "--local", "--data", str(target))
    assert code == 0, "pg_restore --clean replaced the edited audit entry: " + out + err


def _flip_a_byte(backup: Path) -> str:
    path = backup / "database.sqlite3"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return "corrupt backup: database.sqlite3 does not match its SHA-256"


def _lose_a_key(backup: Path) -> str:
    key = next((backup / "files" / "keys").glob("node-*.key.pem"))
    key.unlink()
    return f"incomplete backup: files/keys/{key.name} is missing"


def _unfinished(backup: Path) -> str:
    (backup / "manifest.json").unlink()
    return "incomplete backup: no manifest.json"


def _truncated_manifest(backup: Path) -> str:
    path = backup / "manifest.json"
    path.write_bytes(path.read_bytes()[:100])
    return "corrupt manifest"


def _escaping_path(backup: Path) -> str:
    path = backup / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["files"][1]["path"] = "../../etc/cron.d/x"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return "unsafe path '../../etc/cron.d/x'"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("damage", [_flip_a_byte, _lose_a_key, _unfinished, _truncated_manifest, _escaping_path],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_corrupt_or_incomplete_backup_is_refused_before_anything_changes(node_data: Path, tmp_path: Path, damage,
                                                                           capsys: pytest.CaptureFixture[str]):
    backup_dir = tmp_path / "backup"
    assert exnode(capsys, "backup", str(backup_dir), "--data", str(node_data))[0] == 0
    expected = damage(backup_dir)
    target = tmp_path / "restored"
    for args in (["--data", str(target)], ["--verify-only"]):
        code, out, err = exnode(capsys, "restore", str(backup_dir), *args)
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and expected in err, err
    assert not target.exists()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_backup_refuses_a_target_that_would_not_survive_or_would_mix_backups(node_data: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]):
    code, _, err = exnode(capsys, "backup", str(node_data / "backups" / "today"), "--data", str(node_data))
    assert code == 1 and "inside the data directory" in err, err
    assert not (node_data / "backups").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x", encoding="utf-8")
    code, _, err = exnode(capsys, "backup", str(used), "--data", str(node_data))
    assert code == 1 and "not an empty directory" in err, err
