"""``exnode backup`` and ``exnode restore`` (容灾备份): a node's database, keys and config in one directory
with a manifest, taken while the node runs, and checked in full before a restore touches anything.

Layout of a backup directory::

    manifest.json        written last: a directory without it is an unfinished backup
    database.sqlite3     SQLite's online backup of the node's database (one consistent snapshot), or
    database.pgdump      pg_dump --format=custom of the PostgreSQL database (one snapshot)
    files/…              the data directory apart from the SQLite database: exnode.toml, platforms.toml,
                         keys/ (private keys stay 0600), trust files such as a JWKS or TLS certificates

The database is copied before the files, so the keys in a backup are never older than the signatures
its database holds (a key rotated during the backup is in it too).

The key-encryption keys (``keys/kek-*.key``) are left out unless asked for (``--with-kek``): the records
in a backup are sealed under data keys that only they unwrap, so a stolen backup reveals no personal data.
``exnode restore --keys DIR`` takes them from where the operator keeps them, and refuses, naming the key,
when the backup's active one is neither in the backup nor there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import URL

from node.config import CONFIG_FILE, Config, load_config
from node.storage.database import normalise_url

FORMAT = "exnode-backup/1"
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
POSTGRES_FILE = "database.pgdump"
FILES = "files"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message is one line naming the file or setting."""


@dataclass(frozen=True)
class Outcome:
    """What ``backup`` / ``restore`` did, for the command's output."""

    directory: Path
    node_id: str
    database_kind: str
    revision: str
    files: int
    bytes: int
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "node_id": self.node_id, "database": self.database_kind,
                "revision": self.revision, "files": self.files, "bytes": self.bytes,
                "seconds": round(self.seconds, 3)}


def database_kind(url: str) -> str:
    backend = normalise_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"database.url: unsupported database {backend!r} (sqlite or postgresql)")
    return backend


def sqlite_path(url: str) -> Path:
    database = normalise_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"database.url: {url!r} names no SQLite file")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as pg_dump / pg_restore take it, and the environment carrying its password (a password on
    the command line would show in ``ps``)."""
    parsed: URL = normalise_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _run_pg_tool(tool: str, args: list[str], url: str) -> None:
    binary = shutil.which(tool)
    if binary is None:
        raise BackupError(f"{tool} not found on PATH: install the PostgreSQL client tools of the server's "
                          "major version (Debian: postgresql-client)")
    dsn, env = _libpq(url)
    result = subprocess.run([binary, *args, f"--dbname={dsn}"], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        raise BackupError(f"{tool} exited {result.returncode}: {lines[-1] if lines else 'no message'}")


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def _sqlite_revision(connection: sqlite3.Connection, what: str) -> str:
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{what}: not an exnode database ({error})") from None
    return ",".join(sorted(row[0] for row in rows))


def _postgres_revision(url: str) -> str:
    import psycopg

    dsn, env = _libpq(url)
    try:
        with psycopg.connect(dsn, password=env.get("PGPASSWORD"), connect_timeout=10) as connection:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except psycopg.errors.UndefinedTable:
        raise BackupError(f"database.url {_redacted(url)}: not an exnode database (no alembic_version)") from None
    except psycopg.Error as error:
        raise BackupError(f"database.url {_redacted(url)}: {_first_line(error)}") from None
    return ",".join(sorted(row[0] for row in rows))


def _postgres_has_tables(url: str) -> bool:
    import psycopg

    dsn, env = _libpq(url)
    try:
        with psycopg.connect(dsn, password=env.get("PGPASSWORD"), connect_timeout=10) as connection:
            count = connection.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchone()
    except psycopg.Error as error:
        raise BackupError(f"database.url {_redacted(url)}: {_first_line(error)}") from None
    return bool(count and count[0])


def _redacted(url: str) -> str:
    return normalise_url(url).render_as_string(hide_password=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


Steps = Callable[[str, int, int], None]
"""``steps(what, done, total)``: how far a backup or restore has got (the CLI draws it on a terminal)."""


def _no_steps(what: str, done: int, total: int) -> None:
    pass


def _sha256(path: Path, read: Callable[[int], None] = lambda size: None) -> str:
    """``read(size)``: told of each chunk hashed (the bytes of a large database take a while)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            read(len(chunk))
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _is_within(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _data_files(config: Config) -> tuple[list[Path], list[Path]]:
    """Regular files and directories of the data directory (relative), minus the SQLite database."""
    skip: set[Path] = set()
    if database_kind(config.database_url) == "sqlite":
        database = sqlite_path(config.database_url).resolve()
        skip = {database, *(database.with_name(database.name + suffix) for suffix in SQLITE_SIDECARS)}
    files: list[Path] = []
    directories: list[Path] = []
    for root, names, file_names in os.walk(config.data_dir):
        names.sort()
        for name in names:
            directories.append((Path(root) / name).relative_to(config.data_dir))
        for name in sorted(file_names):
            path = Path(root) / name
            if path.resolve() in skip or not stat.S_ISREG(path.lstat().st_mode):
                continue  # the database goes through its own backup; sockets, symlinks are no node state
            files.append(path.relative_to(config.data_dir))
    return files, directories


KEK_RING = "kek.json"


def _is_kek(relative: Path) -> bool:
    return relative.name.startswith("kek-") and relative.name.endswith(".key")


def backup(config: Config, target: Path, *, with_kek: bool = False, steps: Steps = _no_steps) -> Outcome:
    """Back up a node that may be serving: an online database snapshot, then config and keys, then the
    manifest (hashes of everything) written last, so that a directory with a manifest is a whole backup.
    ``steps``: told of the snapshot (one step: one read transaction), the files copied, the bytes hashed."""
    started = time.monotonic()
    kind = database_kind(config.database_url)
    if not config.data_dir.is_dir():
        raise BackupError(f"{config.data_dir}: no such data directory (run exnode init)")
    if _is_within(target, config.data_dir):
        raise BackupError(f"{target} is inside the data directory {config.data_dir}: a backup must survive "
                          "the loss of the data directory")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not an empty directory: choose a new one")
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)  # private keys and personal data

    steps("database snapshot", 0, 1)
    if kind == "sqlite":
        database_file = SQLITE_FILE
        revision = _backup_sqlite(sqlite_path(config.database_url), target / SQLITE_FILE)
    else:
        database_file = POSTGRES_FILE
        revision = _postgres_revision(config.database_url)
        _run_pg_tool("pg_dump", ["--format=custom", "--no-password", f"--file={target / POSTGRES_FILE}"],
                     config.database_url)
        (target / POSTGRES_FILE).chmod(0o600)

    steps("database snapshot", 1, 1)
    files, directories = _data_files(config)
    if not with_kek:
        files = [relative for relative in files if not _is_kek(relative)]
    for relative in directories:
        (target / FILES / relative).mkdir(parents=True, exist_ok=True)
        (target / FILES / relative).chmod(stat.S_IMODE((config.data_dir / relative).stat().st_mode))
    for copied, relative in enumerate(files, 1):
        destination = target / FILES / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(config.data_dir / relative, destination)  # keeps the mode: keys stay 0600
        steps("files copied", copied, len(files))
    if not (target / FILES / CONFIG_FILE).exists():
        raise BackupError(f"{config.data_dir / CONFIG_FILE}: missing; a backup without the config cannot "
                          "be restored (run exnode init)")

    entries = []
    total = 0
    paths = [target / database_file, *(target / FILES / relative for relative in files)]
    hashed, to_hash = 0, sum(path.stat().st_size for path in paths)

    def read(size: int) -> None:
        nonlocal hashed
        hashed += size
        steps("bytes hashed (SHA-256)", hashed, to_hash)

    for path in paths:
        _fsync(path)
        size = path.stat().st_size
        total += size
        entries.append({"path": path.relative_to(target).as_posix(), "sha256": _sha256(path, read), "size": size,
                        "mode": f"{stat.S_IMODE(path.stat().st_mode):04o}"})
    manifest = {
        "format": FORMAT,
        "node_id": config.node.id,
        "node_name": config.node.name,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "exnode_version": _version(),
        "database": {"kind": kind, "file": database_file, "revision": revision,
                     "url": "" if kind == "sqlite" else _redacted(config.database_url)},
        "directories": [{"path": (PurePosixPath(FILES) / relative.as_posix()).as_posix(),
                         "mode": f"{stat.S_IMODE((config.data_dir / relative).stat().st_mode):04o}"}
                        for relative in directories],
        "files": entries,
    }
    partial = target / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    _fsync(partial)
    partial.replace(target / MANIFEST)
    _fsync(target)
    return Outcome(target, config.node.id, kind, revision, len(entries), total, time.monotonic() - started)


def _backup_sqlite(source_path: Path, destination: Path) -> str:
    """SQLite's online backup API in one step: one read transaction, so one consistent snapshot even in
    WAL mode while the node keeps writing. The copy is turned into a self-contained rollback-journal file."""
    if not source_path.is_file():
        raise BackupError(f"database.url: no SQLite database at {source_path} (run exnode init)")
    source = _sqlite_connect(source_path)
    copy = sqlite3.connect(destination, isolation_level=None)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
        check = copy.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise BackupError(f"{source_path}: the database copy fails its integrity check: {check}")
        revision = _sqlite_revision(copy, str(source_path))
    finally:
        copy.close()
        source.close()
    destination.chmod(0o600)
    return revision


def _version() -> str:
    try:
        return metadata.version("exnode")
    except metadata.PackageNotFoundError:
        return "unknown"


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, checked for shape; every problem is one line naming the backup."""
    if not directory.is_dir():
        raise BackupError(f"{directory}: no such backup directory")
    path = directory / MANIFEST
    if not path.exists():
        raise BackupError(f"{directory}: incomplete backup: no {MANIFEST} (the backup did not finish)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BackupError(f"{path}: corrupt manifest: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(f"{path}: not an exnode backup manifest (format {found!r}, expected {FORMAT!r})")
    try:
        database = manifest["database"]
        kind, database_file = database["kind"], database["file"]
        files = manifest["files"]
        for entry in files:
            _safe_relative(entry["path"], path)
            if not isinstance(entry["sha256"], str) or not isinstance(entry["size"], int):
                raise ValueError(f"entry for {entry['path']}")
            int(entry["mode"], 8)
        for entry in manifest.get("directories", []):
            _safe_relative(entry["path"], path)
            int(entry["mode"], 8)
    except (KeyError, TypeError, ValueError) as error:
        raise BackupError(f"{path}: corrupt manifest: missing or malformed {error}") from None
    if kind not in ("sqlite", "postgresql"):
        raise BackupError(f"{path}: corrupt manifest: unknown database kind {kind!r}")
    listed = {entry["path"] for entry in files}
    for required in (database_file, f"{FILES}/{CONFIG_FILE}"):
        if required not in listed:
            raise BackupError(f"{path}: corrupt manifest: {required} is not listed")
    return manifest


def _safe_relative(value: str, manifest: Path) -> PurePosixPath:
    relative = PurePosixPath(value)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise BackupError(f"{manifest}: corrupt manifest: unsafe path {value!r}")
    return relative


def verify(directory: Path, steps: Steps = _no_steps) -> dict[str, Any]:
    """Every file the manifest lists is there with its size and SHA-256; returns the manifest."""
    manifest = read_manifest(directory)
    hashed, to_hash = 0, sum(entry["size"] for entry in manifest["files"])

    def read(size: int) -> None:
        nonlocal hashed
        hashed += size
        steps("bytes verified (SHA-256)", hashed, to_hash)

    for entry in manifest["files"]:
        path = directory / entry["path"]
        if not path.is_file():
            raise BackupError(f"{directory}: incomplete backup: {entry['path']} is missing")
        if path.stat().st_size != entry["size"] or _sha256(path, read) != entry["sha256"]:
            raise BackupError(f"{directory}: corrupt backup: {entry['path']} does not match its SHA-256 in "
                              f"{MANIFEST}")
    return manifest


def _needed_keks(backup_dir: Path, manifest: dict[str, Any], keys_from: Path | None) -> dict[str, bytes]:
    """The key-encryption keys the restored node needs that the backup does not hold, by relative
    destination → contents (read now: a forced restore may replace ``keys_from`` itself); BackupError
    naming the active one when it is nowhere."""
    rings = [e["path"] for e in manifest["files"] if PurePosixPath(e["path"]).name == KEK_RING]
    if not rings:
        return {}  # a node from before encryption at rest
    ring_path = PurePosixPath(rings[0])
    ring = json.loads((backup_dir / ring_path).read_text(encoding="utf-8"))
    listed = {e["path"] for e in manifest["files"]}
    found: dict[str, bytes] = {}
    for entry in ring.get("keys", []):
        relative = (ring_path.parent / f"kek-{entry['kid']}.key").as_posix()
        if relative in listed:
            continue
        source = keys_from / f"kek-{entry['kid']}.key" if keys_from is not None else None
        if source is not None and source.is_file():
            found[str(PurePosixPath(relative).relative_to(FILES))] = source.read_bytes()
        elif entry["kid"] == ring.get("active"):
            where = f"{keys_from} has no kek-{entry['kid']}.key" if keys_from is not None else "no --keys DIR given"
            raise BackupError(f"the backup's records are encrypted under key-encryption key {entry['kid']}, which "
                              f"the backup does not hold ({where}): pass --keys DIR, a directory with "
                              f"kek-{entry['kid']}.key (the node's keys directory, or where its KEK is kept)")
    return found


def restore(backup_dir: Path, data_dir: Path, *, force: bool = False,
            environ: dict[str, str] | None = None, keys_from: Path | None = None, steps: Steps = _no_steps) -> Outcome:
    """Restore a verified backup into ``data_dir``. The target (the directory, and the SQLite file or
    PostgreSQL database the restored config names, after ``EXNODE_*`` overrides) must be empty unless
    ``force``; nothing is changed before the whole backup has verified."""
    started = time.monotonic()
    manifest = verify(backup_dir, steps)
    keks = _needed_keks(backup_dir, manifest, keys_from)
    kind, revision = manifest["database"]["kind"], manifest["database"]["revision"]
    config = replace(load_config(backup_dir / FILES, environ), data_dir=data_dir)
    configured = database_kind(config.database_url)
    if configured != kind:
        raise BackupError(f"the backup holds a {kind} database but database.url names {configured}: restore "
                          "into the same kind of database (set EXNODE_DATABASE_URL)")

    occupied = sorted(p.name for p in data_dir.iterdir()) if data_dir.is_dir() else []
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"{data_dir} exists and is not a directory")
    if occupied and not force:
        raise BackupError(f"{data_dir} is not empty ({', '.join(occupied[:4])}{', …' if len(occupied) > 4 else ''}):"
                          " refusing to restore over it; pass --force to replace its contents")
    if kind == "sqlite":
        database = sqlite_path(config.database_url)
        if database.exists() and not force and not _is_within(database, data_dir):
            raise BackupError(f"{database} exists: refusing to restore over it; pass --force to replace it")
    elif _postgres_has_tables(config.database_url) and not force:
        raise BackupError(f"database {_redacted(config.database_url)} is not empty: refusing to restore over "
                          "it; pass --force to replace its contents (pg_restore --clean)")

    # Verified and allowed: from here on the target changes.
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    if force:
        for name in occupied:
            path = data_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    database_file = backup_dir / manifest["database"]["file"]
    if kind == "sqlite":
        database = sqlite_path(config.database_url)
        for suffix in SQLITE_SIDECARS:  # a stale WAL beside a restored file would corrupt it
            database.with_name(database.name + suffix).unlink(missing_ok=True)
        database.parent.mkdir(parents=True, exist_ok=True)
        staged = database.with_name(database.name + ".restoring")
        shutil.copyfile(database_file, staged)
        staged.chmod(0o600)
        _fsync(staged)
        staged.replace(database)
        connection = _sqlite_connect(database)
        try:
            check = connection.execute("PRAGMA quick_check").fetchone()
            restored_revision = _sqlite_revision(connection, str(database))
        finally:
            connection.close()
        if not check or check[0] != "ok":
            raise BackupError(f"{database}: the restored database fails its integrity check: {check}")
    else:
        _run_pg_tool("pg_restore", ["--clean", "--if-exists", "--no-owner", "--no-privileges",
                                    "--single-transaction", "--exit-on-error", "--no-password",
                                    str(database_file)], config.database_url)
        restored_revision = _postgres_revision(config.database_url)
    if restored_revision != revision:
        raise BackupError(f"the restored database is at schema revision {restored_revision!r}, the manifest "
                          f"says {revision!r}")

    for entry in manifest.get("directories", []):
        path = data_dir / PurePosixPath(entry["path"]).relative_to(FILES)
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(int(entry["mode"], 8))
    entries = [e for e in manifest["files"] if e["path"].startswith(f"{FILES}/")]
    # The config last: an interrupted restore leaves no config that `exnode serve` would start from.
    entries.sort(key=lambda e: e["path"] == f"{FILES}/{CONFIG_FILE}")
    total = database_file.stat().st_size
    for entry in entries:
        destination = data_dir / PurePosixPath(entry["path"]).relative_to(FILES)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup_dir / entry["path"], destination)
        destination.chmod(int(entry["mode"], 8))
        total += entry["size"]
    for relative, material in keks.items():
        destination = data_dir / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.unlink(missing_ok=True)
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(material)
    return Outcome(data_dir, manifest.get("node_id", ""), kind, revision, len(entries) + len(keks) + 1, total,
                   time.monotonic() - started)
