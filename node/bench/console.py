"""Console benchmark (``exnode bench console``): the audit search page over 10^6 entries and the catalog
search page over 10^5 resources, p50/p99 from concurrent signed-in sessions.

Why: officers page through a year of audit entries and partners search a national catalog in a
browser; both pages must answer within 300 ms at p99 (issue 15). The node runs as ``exnode serve`` in a
process of its own (as in production); the sessions are threads here, each signed in through the dev
sign-in, each asking for full pages (session check, policy, query, template, audit entry written and
committed before the answer). The raw limit, measured in the same run and server: the console's static
stylesheet through the same listener and connections (HTTP, no use case) — so the ratio says what the
pages cost above serving bytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from node.bench.catalog import CHUNK, Generator
from security.audit import AuditRecord

SESSIONS = 8
REQUESTS_PER_SESSION = 60
ACTIONS = ("CatalogService/ListResources", "CatalogService/GetResource", "ListsService/ListDemands",
           "ExchangeService/IngestStream", "ExchangeService/Pull", "AuditService/QueryAudit")
RESULTS = ("OK",) * 17 + ("PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_ARGUMENT")
SUBJECTS = tuple(f"user-{n:03d}" for n in range(200))
DEPARTMENTS = ("11100000MB01284764", "11150100011627354Q", "11150000011519437L", "11100000MB0173295A")
CATALOG_QUERIES = ("低保", "婚姻", "养老机构", "殡葬", "社会组织", "救助 金额", "公民身份号码", "区块链", "")
DEV_DEPARTMENT = "11100000MB01284764"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def populate(data: Path, audit_entries: int, resources: int, progress: Callable[[str, int, int], None]) -> None:
    """Resources through the catalog's import, audit entries through the audit writer (hash chain and
    signed checkpoints as the node writes them), in large transactions."""
    from node import bootstrap
    from node.config import load_config
    from security.identity import Principal

    node = bootstrap.build(load_config(data), start_audit=False)
    try:
        generator = Generator()
        pool: list[str] = []
        system = Principal.system("bench")
        made = 0
        while made < resources:
            size = min(CHUNK, resources - made)
            metas = [generator.one(pool) for _ in range(size)]
            node.catalog.import_resources(system, metas, publish=True)
            pool.extend(m.code for m in metas)
            made += size
            progress("resources", made, resources)
        rng = random.Random(15)
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
        step = dt.timedelta(days=365) / max(1, audit_entries)
        written, batch = 0, 20_000
        while written < audit_entries:
            records = []
            for index in range(written, min(audit_entries, written + batch)):
                result = rng.choice(RESULTS)
                records.append(AuditRecord(
                    at=start + step * index, request_id=uuid.uuid4().hex, subject=rng.choice(SUBJECTS),
                    department_code=rng.choice(DEPARTMENTS), roles=("consumer",), action=rng.choice(ACTIONS),
                    target=f"resource:311140001/{rng.randrange(1, 3000):06d}", result=result, peer="ipv4:127.0.0.1",
                    detail="" if result == "OK" else "department holds no live grant for the resource"))
            node.audit_writer.append(records)
            written += len(records)
            progress("audit entries", written, audit_entries)
    finally:
        node.close()


class Session:
    """One person's browser: its own connection and session cookie."""

    def __init__(self, host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=60)
        self.cookies: dict[str, str] = {}
        self.use_case_s = 0.0
        """The last page's time in its use case (the search or query), from its ``Server-Timing`` header."""

    def request(self, method: str, path: str, body: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        data = None
        if body is not None:
            data = urlencode(body).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        content = response.read()
        elapsed = time.perf_counter() - started
        self.use_case_s = sum(float(m) for m in _DURATION.findall(response.headers.get("server-timing", ""))) / 1000
        for header in response.headers.get_all("set-cookie") or ():
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response.status, content, elapsed

    def sign_in(self, roles: tuple[str, ...]) -> None:
        status, page, _ = self.request("GET", "/login")
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page)
        assert status == 200 and token, "the console's sign-in page did not answer"
        form = {"csrf_token": token.group(1).decode(), "next": "/", "department": DEV_DEPARTMENT,
                "subject": f"bench-{uuid.uuid4().hex[:6]}"}
        body = urlencode(form) + "".join(f"&roles={r}" for r in roles)
        self.connection.request("POST", "/login/dev", body=body.encode(), headers={
            "content-type": "application/x-www-form-urlencoded",
            "cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())})
        response = self.connection.getresponse()
        response.read()
        for header in response.headers.get_all("set-cookie") or ():
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        assert response.status == 303 and "exnode_console" in self.cookies, "dev sign-in failed"


def _audit_paths(rng: random.Random) -> Iterator[str]:
    """What officers ask: the newest page, filters by subject/action/result/department and time ranges,
    and following a next-page link."""
    while True:
        kind = rng.randrange(6)
        query: dict[str, str] = {}
        if kind == 1:
            query["subject"] = rng.choice(SUBJECTS)
        elif kind == 2:
            query["action"] = rng.choice(ACTIONS)
            query["result"] = rng.choice(("PERMISSION_DENIED", "OK"))
        elif kind == 3:
            query["dept"] = rng.choice(DEPARTMENTS)
        elif kind == 4:
            day = dt.date.today() - dt.timedelta(days=rng.randrange(1, 360))
            query["since"] = f"{day.isoformat()}T00:00"
            query["until"] = f"{(day + dt.timedelta(days=1)).isoformat()}T00:00"
        elif kind == 5:
            query["target"] = f"resource:311140001/{rng.randrange(1, 3000):06d}"
        yield "/audit" + (f"?{urlencode(query)}" if query else "")


def _catalog_paths(rng: random.Random) -> Iterator[str]:
    while True:
        query = {"q": rng.choice(CATALOG_QUERIES)}
        if rng.random() < 0.3:
            query["share"] = rng.choice(("CONDITIONAL", "UNCONDITIONAL"))
        yield "/catalog?" + urlencode(query)


_NEXT = re.compile(rb'rel="next" href="([^"]+)"')
_DURATION = re.compile(r"dur=([0-9.]+)")


def run_load(host: str, port: int, roles: tuple[str, ...], paths: Callable[[random.Random], Iterator[str]],
             requests: int, follow_next: bool = True, own: list[float] | None = None) -> list[float]:
    """SESSIONS concurrent sessions, each ``requests`` page loads (a next link is followed one time in
    three); the latencies in seconds. A page that is not 200 fails the run. ``own``: gets each page's
    latency less the time its use case took on the node (``Server-Timing``): what the console adds."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        rng = random.Random(index)
        session = Session(host, port)
        try:
            session.sign_in(roles)
            source = paths(rng)
            pending = ""
            for _ in range(requests):
                path = pending or next(source)
                pending = ""
                status, page, elapsed = session.request("GET", path)
                if status != 200:
                    errors.append(f"{path}: HTTP {status}")
                    return
                with lock:
                    latencies.append(elapsed)
                    if own is not None:
                        own.append(max(0.0, elapsed - session.use_case_s))
                found = _NEXT.search(page)
                if follow_next and found and rng.random() < 0.33:
                    pending = found.group(1).decode().replace("&amp;", "&")
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")

    _sessions(one, errors, "console")
    return latencies


def _sessions(one: Callable[[int], None], errors: list[str], what: str) -> None:
    """``one`` run by SESSIONS threads at once; the first error they noted ends the bench."""
    threads = [threading.Thread(target=one, args=(i,)) for i in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{what} load failed: {errors[0]}")


def rpc_load(data: Path, address: str, role: str, paths: Callable[[random.Random], Iterator[str]],
             requests: int) -> list[float]:
    """The same searches as the pages (same queries, a next page followed one time in three) through the
    matching RPC (ListResources, QueryAudit) from SESSIONS concurrent callers: the use case with the
    RPC's own cost (token check, interceptors, audit entry), so the console's own cost above the use
    case is the ratio of the two."""
    from urllib.parse import parse_qs, urlsplit

    import grpc
    from exnode.v1 import audit_pb2, audit_pb2_grpc, catalog_pb2, catalog_pb2_grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from node.config import load_config
    from security.identity import issue_dev_token

    config = load_config(data)
    token = issue_dev_token(config.keys_dir, config.node.id, config.audience, subject="bench-rpc",
                            department_code=DEV_DEPARTMENT, roles=[role])
    metadata = (("authorization", f"Bearer {token}"),)
    beijing = dt.timezone(dt.timedelta(hours=8))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def when(value: str) -> Timestamp | None:
        if not value:
            return None
        stamp = Timestamp()
        stamp.FromDatetime(dt.datetime.fromisoformat(value).replace(tzinfo=beijing).astimezone(dt.UTC))
        return stamp

    def one(index: int) -> None:
        rng = random.Random(index)
        source = paths(rng)
        with grpc.insecure_channel(address) as channel:
            catalog_stub, audit_stub = catalog_pb2_grpc.CatalogServiceStub(channel), audit_pb2_grpc.AuditServiceStub(channel)
            pending: tuple[str, dict[str, str]] | None = None
            try:
                for _ in range(requests):
                    path, query = pending or (lambda u: (u.path, {k: v[0] for k, v in parse_qs(u.query).items()}))(
                        urlsplit(next(source)))
                    token = pending[1].get("page", "") if pending else ""
                    pending = None
                    started = time.perf_counter()
                    if path == "/catalog":
                        share = query.get("share", "")
                        answer = catalog_stub.ListResources(catalog_pb2.ListResourcesRequest(
                            query=query.get("q", ""), share_type=catalog_pb2.ShareType.Value(f"SHARE_{share}") if share else 0,
                            page_size=20, page_token=token), metadata=metadata, timeout=60)
                    else:
                        answer = audit_stub.QueryAudit(audit_pb2.QueryAuditRequest(
                            since=when(query.get("since", "")), until=when(query.get("until", "")),
                            subject=query.get("subject", ""), department_code=query.get("dept", ""),
                            action=query.get("action", ""), target=query.get("target", ""),
                            result=query.get("result", ""), page_size=50, page_token=token),
                            metadata=metadata, timeout=60)
                    elapsed = time.perf_counter() - started
                    with lock:
                        latencies.append(elapsed)
                    if answer.next_page_token and rng.random() < 0.33:
                        pending = (path, {**query, "page": answer.next_page_token})
            except grpc.RpcError as error:
                errors.append(f"{error.code().name}: {error.details()}")

    _sessions(one, errors, "rpc")
    return latencies


def _static_load(host: str, port: int, requests: int) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        session = Session(host, port)
        for _ in range(requests):
            status, _, elapsed = session.request("GET", "/static/console.css")
            assert status == 200
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=one) for _ in range(SESSIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _settled(metrics_port: int, deadline: float) -> None:
    """A starting node verifies its whole audit chain once (housekeeping); the pages are timed after it,
    as an officer meets them on a node that has been up a while."""
    import urllib.request

    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
                text = response.read().decode()
            if re.search(r"^exnode_audit_verify_timestamp_seconds [1-9]", text, re.M):
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError("the node did not finish its start-up audit verification")


@contextlib.contextmanager
def served(data: Path) -> Iterator[tuple[str, int, str]]:
    """The node serving ``data``: the console's host and port, and its gRPC address."""
    port, metrics_port, grpc_port = _free_port(), _free_port(), _free_port()
    log = (data / "bench-serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "--log-level", "WARNING", "serve", "--data", str(data),
         "--listen", f"127.0.0.1:{grpc_port}", "--metrics-listen", f"127.0.0.1:{metrics_port}",
         "--console-listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        for line in process.stdout:
            if "console on" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("exnode serve did not start its console")
        else:
            raise RuntimeError(f"exnode serve exited: {(data / 'bench-serve.log').read_text(errors='replace')[-2000:]}")
        started = time.monotonic()
        _settled(metrics_port, started + 1800)
        _log(f"bench console: the node verified its audit chain {time.monotonic() - started:.0f} s after start")
        yield "127.0.0.1", port, f"127.0.0.1:{grpc_port}"
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:  # a stop that hangs must not hang the benchmark too
            process.kill()
            process.wait(30)
        log.close()


def main(*, audit_entries: int = 1_000_000, resources: int = 100_000, requests: int = REQUESTS_PER_SESSION,
         database_url: str = "", keep: Path | None = None,
         bar: Callable[[str, int], contextlib.AbstractContextManager[Any]] | None = None) -> int:
    """``keep``: a directory for the node's data, reused by the next run with the same sizes (populating
    10^6 entries takes minutes); without it, a temporary directory. ``bar(description, total)``: a
    progress bar for the population (the CLI's, on a terminal); without it, lines on stderr."""
    with contextlib.ExitStack() as stack:
        root = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exnode-bench-console-")))
        data = root / "node"
        marker = root / f"populated-{audit_entries}-{resources}"
        if not marker.exists():
            if data.exists():
                raise RuntimeError(f"{data} exists but was not populated by a finished run of these sizes")
            _prepare(data, database_url)
            started = time.monotonic()
            show_progress = bar is not None
            with (bar or _no_bar)("bench console: resources, then audit entries", resources + audit_entries) as shown:
                done: dict[str, int] = {}

                def progress(what: str, count: int, total: int) -> None:
                    shown.advance(count - done.get(what, 0))
                    done[what] = count
                    if not show_progress and (count == total or count % 200_000 == 0):
                        _log(f"bench console: {what} {count}/{total}")

                populate(data, audit_entries, resources, progress)
            marker.touch()
            _log(f"bench console: populated in {time.monotonic() - started:.0f} s")
        with served(data) as (host, port, grpc_address):
            run_load(host, port, ("security_officer",), _audit_paths, 5)  # warm-up, not counted
            run_load(host, port, ("consumer",), _catalog_paths, 5)
            audit_own: list[float] = []
            catalog_own: list[float] = []
            audit = run_load(host, port, ("security_officer",), _audit_paths, requests, own=audit_own)
            catalog = run_load(host, port, ("consumer",), _catalog_paths, requests, own=catalog_own)
            raw = _static_load(host, port, requests)
            rpc_audit = rpc_load(data, grpc_address, "security_officer", _audit_paths, requests)
            rpc_catalog = rpc_load(data, grpc_address, "consumer", _catalog_paths, requests)
    print(f"console_audit_entries={audit_entries}")
    print(f"console_catalog_resources={resources}")
    print(f"console_sessions={SESSIONS}")
    print(f"console_audit_p50_ms={_pct(audit, 0.50):.1f}")
    print(f"console_audit_p99_ms={_pct(audit, 0.99):.1f}")
    print(f"console_catalog_p50_ms={_pct(catalog, 0.50):.1f}")
    print(f"console_catalog_p99_ms={_pct(catalog, 0.99):.1f}")
    print(f"console_audit_minus_query_p99_ms={_pct(audit_own, 0.99):.1f}")
    print(f"console_catalog_minus_search_p50_ms={_pct(catalog_own, 0.50):.1f}")
    print(f"console_catalog_minus_search_p99_ms={_pct(catalog_own, 0.99):.1f}")
    print(f"raw_static_p50_ms={_pct(raw, 0.50):.1f}")
    print(f"raw_static_p99_ms={_pct(raw, 0.99):.1f}")
    print(f"console_audit_vs_raw_p99_ratio={_pct(audit, 0.99) / max(_pct(raw, 0.99), 0.001):.1f}")
    print(f"console_catalog_vs_raw_p99_ratio={_pct(catalog, 0.99) / max(_pct(raw, 0.99), 0.001):.1f}")
    print(f"rpc_audit_p50_ms={_pct(rpc_audit, 0.50):.1f}")
    print(f"rpc_audit_p99_ms={_pct(rpc_audit, 0.99):.1f}")
    print(f"rpc_catalog_p50_ms={_pct(rpc_catalog, 0.50):.1f}")
    print(f"rpc_catalog_p99_ms={_pct(rpc_catalog, 0.99):.1f}")
    print(f"console_audit_vs_rpc_p99_ratio={_pct(audit, 0.99) / max(_pct(rpc_audit, 0.99), 0.001):.2f}")
    print(f"console_catalog_vs_rpc_p99_ratio={_pct(catalog, 0.99) / max(_pct(rpc_catalog, 0.99), 0.001):.2f}")
    print(f"console_pages_timed={len(audit) + len(catalog)}")
    print(f"console_mean_page_ms={statistics.mean(audit + catalog) * 1000:.1f}")
    return 0


@contextlib.contextmanager
def _no_bar(description: str, total: int) -> Iterator[Any]:
    class Silent:
        def advance(self, amount: int = 1) -> None:
            pass

    yield Silent()


def _prepare(data: Path, database_url: str) -> None:
    """A development node without relaying (no broker needed), on SQLite or the given database."""
    subprocess.run([sys.executable, "-m", "node.cli", "init", "--data", str(data), "--dev"], check=True,
                   capture_output=True)
    config = data / "exnode.toml"
    text = config.read_text(encoding="utf-8").replace("dispatch = true", "dispatch = false") \
        .replace("publish = true", "publish = false")
    if database_url:
        text = text.replace('url = ""', f'url = "{database_url}"', 1)
    config.write_text(text, encoding="utf-8")
