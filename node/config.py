"""One TOML config file (``<data>/exnode.toml``) plus ``EXNODE_<SECTION>_<KEY>`` environment overrides.

Every key has a default here; an unknown key or a value of the wrong type is an error that names the
key and the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

CONFIG_FILE = "exnode.toml"


class ConfigError(Exception):
    """A bad config value; the message names the key and where it came from."""


@dataclass(frozen=True)
class NodeSection:
    id: str = "node"
    name: str = "民政数据共享交换节点"
    department_code: str = ""


@dataclass(frozen=True)
class ServerSection:
    listen: str = "127.0.0.1:50051"
    metrics_listen: str = "127.0.0.1:9464"
    max_message_bytes: int = 8 * 1024 * 1024
    shutdown_grace_s: float = 5.0


@dataclass(frozen=True)
class DatabaseSection:
    url: str = ""
    """Empty: SQLite (WAL) at ``<data>/exnode.db``. ``postgresql://…`` uses psycopg 3."""


@dataclass(frozen=True)
class RabbitSection:
    url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass(frozen=True)
class Config:
    data_dir: Path
    node: NodeSection = field(default_factory=NodeSection)
    server: ServerSection = field(default_factory=ServerSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    rabbitmq: RabbitSection = field(default_factory=RabbitSection)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'exnode.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"


SECTIONS = {"node": NodeSection, "server": ServerSection, "database": DatabaseSection, "rabbitmq": RabbitSection}


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
            return value.lower() in ("1", "true", "yes")
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where}: expected {type(default).__name__}, got {value!r}")


def load_config(data_dir: Path, environ: dict[str, str] | None = None) -> Config:
    """Read ``<data_dir>/exnode.toml`` (if present) and apply ``EXNODE_*`` overrides."""
    environ = dict(os.environ if environ is None else environ)
    path = data_dir / CONFIG_FILE
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
    sections: dict[str, Any] = {}
    for name, kind in SECTIONS.items():
        values = raw.pop(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        defaults = kind()
        known = {f.name for f in fields(kind)}
        for key in values:
            if key not in known:
                raise ConfigError(f"{path}: unknown key {name}.{key} (known: {', '.join(sorted(known))})")
        updates = {key: _coerce(value, getattr(defaults, key), f"{path}: {name}.{key}") for key, value in values.items()}
        for key in known:
            env_name = f"EXNODE_{name.upper()}_{key.upper()}"
            if env_name in environ:
                updates[key] = _coerce(environ[env_name], getattr(defaults, key), f"environment {env_name}")
        sections[name] = replace(defaults, **updates)
    if raw:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(raw))} (known: {', '.join(SECTIONS)})")
    return Config(data_dir=data_dir, **sections)


def default_data_dir() -> Path:
    return Path(os.environ.get("EXNODE_DATA", ".exnode"))


def render_config(node_id: str, node_name: str, department_code: str) -> str:
    """The commented config ``exnode init`` writes."""
    return f'''# exnode configuration. Every key can be overridden by EXNODE_<SECTION>_<KEY>,
# e.g. EXNODE_DATABASE_URL=postgresql://127.0.0.1/exnode or EXNODE_SERVER_LISTEN=0.0.0.0:50051.

[node]
id = "{node_id}"                    # used in queue names: exnode.<id>.in, exnode.<id>.out.<platform>
name = "{node_name}"
department_code = "{department_code}"   # 统一社会信用代码 of the department running this node

[server]
listen = "127.0.0.1:50051"           # gRPC
metrics_listen = "127.0.0.1:9464"    # Prometheus /metrics
max_message_bytes = 8388608          # larger requests get RESOURCE_EXHAUSTED

[database]
url = ""                             # empty: SQLite (WAL) in this directory; or postgresql://host/db

[rabbitmq]
url = "amqp://guest:guest@127.0.0.1:5672/%2F"
'''
