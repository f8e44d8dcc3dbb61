"""Fixtures shared by every suite. PostgreSQL and RabbitMQ are the real local servers: when they are
missing, the tests that need them fail (CI starts them); they are never faked or skipped."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

# Every node a test starts serves its web console on a port of its own choosing: the default 8080 is for
# `make run`, and nodes of parallel test runs (and of other worktrees) must not contend for it.
os.environ.setdefault("EXNODE_CONSOLE_LISTEN", "127.0.0.1:0")

from catalog.codes import credit_code_check_character
from catalog.model import (
    Classification,
    FormatClass,
    Item,
    ItemDataType,
    OpenType,
    ResourceMetadata,
    ShareMethodClass,
    ShareMethodType,
    ShareType,
    UpdateCycle,
)

POSTGRES_ADMIN = os.environ.get("EXNODE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PROVIDER = "11100000MB01284764"  # 民政部社会救助司 in the sample catalog
OTHER_PROVIDER = "11150100011627354Q"  # 呼和浩特市民政局


def credit_code(body17: str) -> str:
    return body17 + credit_code_check_character(body17)


def resource(code: str = "311140001/000101", **changes: object) -> ResourceMetadata:
    """A valid 低保 resource; tests change what they are about."""
    fields: dict[str, object] = dict(
        code=code,
        name="城乡最低生活保障对象信息",
        classification=Classification.DEPARTMENTAL,
        provider_name="民政部社会救助司",
        provider_code=PROVIDER,
        summary="全国城乡低保对象家庭及成员信息，用于跨部门救助资格核验。",
        format_class=FormatClass.DATABASE,
        format_type="KingbaseES",
        items=(
            Item("公民身份号码", ItemDataType.STRING, 18, True),
            Item("姓名", ItemDataType.STRING, 50, True),
            Item("保障金额", ItemDataType.CURRENCY, 12, False),
            Item("纳入保障日期", ItemDataType.DATE, 0, True),
        ),
        share_type=ShareType.CONDITIONAL,
        share_condition="仅用于社会救助家庭经济状况核对，需经申请人书面授权",
        share_method_class=ShareMethodClass.PLATFORM,
        share_method_type=ShareMethodType.INTERFACE,
        open_type=OpenType.NOT_OPEN,
        update_cycle=UpdateCycle.MONTHLY,
    )
    fields.update(changes)
    return ResourceMetadata(**fields)  # type: ignore[arg-type]


class FixedClock:
    """A controllable clock for use cases (time only moves when a test says so)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of the real local PostgreSQL; a connection failure fails the test."""
    try:
        with psycopg.connect(POSTGRES_ADMIN.replace("postgresql+psycopg", "postgresql"), connect_timeout=5):
            pass
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is required at {POSTGRES_ADMIN} and is not reachable: {error}", pytrace=False)
    return POSTGRES_ADMIN


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh database with a unique name on the real server, dropped afterwards."""
    name = f"exnode_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = postgres_server.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'exnode.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Storage tests run against both supported databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'exnode.db'}"
    return request.getfixturevalue("postgres_url")
