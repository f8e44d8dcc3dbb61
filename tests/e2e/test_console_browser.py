"""The web console in a real browser: Debian's headless Chromium driven by Playwright, against a node
started by `exnode serve` like `make run` starts it. Each role signs in and does its work; screenshots
of every page go to the test's output directory (and to $EXNODE_CONSOLE_SCREENSHOTS when set, which is
how the README's PNGs were made)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from exnode.v1 import catalog_pb2, catalog_pb2_grpc
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.test_cli import ADMIN_DEPT, EXNODE, exnode, free_port, issue

CHROMIUM = "/usr/bin/chromium"
PARTNER_DEPT = "11150100011627354Q"  # 呼和浩特市民政局: another department, a consumer of the ministry's data
SCRIPT_NAME = "<script>alert(1)</script>"


class ConsoleNode:
    def __init__(self, root: Path, *, sample: bool = True, env: dict[str, str] | None = None,
                 console_port: int = 0) -> None:
        self.data = root / "node"
        exnode("init", "--data", str(self.data), "--dev", *(["--sample"] if sample else []))
        self.grpc = f"127.0.0.1:{free_port()}"
        self.url = f"http://127.0.0.1:{console_port or free_port()}"
        self.log = root / "serve.log"
        self.out = root / "serve.out"
        with self.log.open("ab") as log, self.out.open("ab") as out:
            self.process = subprocess.Popen(
                [*EXNODE, "serve", "--data", str(self.data), "--listen", self.grpc, "--metrics-listen",
                 f"127.0.0.1:{free_port()}", "--console-listen", self.url.removeprefix("http://")],
                stdout=out, stderr=log, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 60
        while "console on" not in self.out.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"exnode serve did not start: {self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def cli(self, *args: str, token: str) -> subprocess.CompletedProcess:
        return exnode(*args, "--server", self.grpc, env={"EXNODE_TOKEN": token})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleNode]:
    root = tmp_path_factory.mktemp("console")
    served = ConsoleNode(root)
    admin = issue(served.data, ADMIN_DEPT, "catalog_admin")
    # a draft whose name is markup: it must be shown as text everywhere
    shown = json.loads(served.cli("catalog", "show", "311140001/000001", "--json", token=admin).stdout)["metadata"]
    draft = dict(shown, code="311140001/000777", name=SCRIPT_NAME, related_codes=[])
    draft.pop("publish_date", None)
    path = root / "draft.json"
    path.write_text(json.dumps(draft, ensure_ascii=False), encoding="utf-8")
    served.cli("catalog", "create", str(path), token=admin)
    # traffic for the audit trail: more than one page of entries, and some denials
    officer = issue(served.data, ADMIN_DEPT, "security_officer")
    with grpc.insecure_channel(served.grpc) as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        for _ in range(60):
            stub.ListResources(catalog_pb2.ListResourcesRequest(page_size=5), metadata=[("authorization", f"Bearer {admin}")])
        for _ in range(3):
            with pytest.raises(grpc.RpcError):
                stub.ListResources(catalog_pb2.ListResourcesRequest(), metadata=[("authorization", f"Bearer {officer}")])
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run ops/ensure-services.sh"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def snap(page: Page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    published = os.environ.get("EXNODE_CONSOLE_SCREENSHOTS")
    if published:
        Path(published).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(published) / path.name)


def sign_in(browser: Browser, node: ConsoleNode, department: str, *roles: str, subject: str = "console-user"
            ) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 860}, locale="zh-CN").new_page()
    page.goto(node.url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F"))
    page.fill("#department", department)
    page.fill("#subject", subject)
    for role in roles:
        page.check(f"input[name=roles][value={role}]")
    page.get_by_role("button", name="开发登录").click()
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    return page


def test_every_page_is_chinese_with_a_strict_content_security_policy(node: ConsoleNode, browser: Browser):
    page = browser.new_page()
    response = page.goto(node.url + "/login")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    policy = response.headers["content-security-policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy  # no script at all, inline or not
    assert response.headers["x-frame-options"] == "DENY"
    cookie = next(c for c in page.context.cookies() if c["name"] == "exnode_console_login")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.close()


def test_officer_searches_pages_and_opens_the_audit_trail(node: ConsoleNode, browser: Browser, shots: Path):
    page = sign_in(browser, node, ADMIN_DEPT, "security_officer", subject="officer-wang")
    session = next(c for c in page.context.cookies() if c["name"] == "exnode_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    page.goto(node.url + "/audit")
    rows = page.locator("table.grid tbody tr")
    expect(rows).to_have_count(50)
    snap(page, shots, "officer-audit")
    first = rows.first.locator("td").first.inner_text()
    page.get_by_role("link", name="下一页 »").click()
    assert int(page.locator("table.grid tbody tr").first.locator("td").first.inner_text()) < int(first)
    # filters: an action and a result
    page.goto(node.url + "/audit")
    page.fill("input[name=action]", "CatalogService/ListResources")
    page.select_option("select[name=result]", "PERMISSION_DENIED")
    page.get_by_role("button", name="检索").click()
    expect(page.locator("table.grid tbody tr")).to_have_count(3)
    for cell in page.locator("table.grid tbody tr td:nth-child(3)").all_inner_texts():
        assert cell == "PERMISSION_DENIED"
    snap(page, shots, "officer-audit-denials")
    page.locator("table.grid tbody tr td a").first.click()
    expect(page.locator("h1")).to_contain_text("审计记录 #")
    assert "a security_officer reads the audit trail and nothing else" in page.content()
    snap(page, shots, "officer-audit-entry")
    page.goto(node.url + "/audit/chain")
    page.get_by_role("button", name="立即核验").click()
    expect(page.locator(".verdict h2")).to_have_text("核验通过")
    # the last verification comes from the database (every replica shows it), with who ran it and how
    last = page.locator("dd.last-verification").inner_text()
    assert "完好" in last and "officer-wang" in last and ADMIN_DEPT in last and "立即核验" in last, last
    snap(page, shots, "officer-chain")
    page.goto(node.url + "/audit/charts")
    expect(page.locator("svg.chart")).to_have_count(3)
    assert "PERMISSION_DENIED" in page.content()
    snap(page, shots, "officer-charts")
    charts_request = page.locator("code.request-id").inner_text()
    csv = page.context.request.get(node.url + "/audit/export.csv?action=CatalogService%2FListResources")
    assert csv.ok and csv.body().startswith("\ufeffsequence,".encode())
    jsonl = page.context.request.get(node.url + "/audit/export.jsonl")
    lines = jsonl.text().splitlines()
    assert json.loads(lines[0])["type"] == "header" and len(lines) > 60
    # the page's request id is the audit entry's, written before the page was answered
    mine = [json.loads(line) for line in lines if charts_request in line]
    assert len(mine) == 1 and mine[0]["action"] == "AuditService/QueryAudit" and mine[0]["subject"] == "officer-wang"
    assert mine[0]["peer"].startswith("console:")
    page.close()


def test_an_officer_opening_an_administrator_page_gets_403(node: ConsoleNode, browser: Browser, shots: Path):
    page = sign_in(browser, node, ADMIN_DEPT, "security_officer")
    for path in ("/admin/drafts", "/catalog", "/review", "/ops"):
        response = page.goto(node.url + path)
        assert response.status == 403, path
    assert "a security_officer reads the audit trail and nothing else" in page.content()
    snap(page, shots, "officer-403")
    nav = page.get_by_role("navigation", name="主导航").inner_text()
    assert "审计日志" in nav and "资源目录" not in nav and "草稿" not in nav
    page.close()


def test_partner_browses_searches_and_files_a_demand_with_suggestions(node: ConsoleNode, browser: Browser,
                                                                     shots: Path):
    page = sign_in(browser, node, PARTNER_DEPT, "consumer", subject="partner-li")
    page.goto(node.url + "/catalog")
    expect(page.locator("table.grid caption")).to_contain_text("共 58 项资源")
    expect(page.locator("table.grid tbody tr")).to_have_count(20)
    snap(page, shots, "partner-catalog")
    page.get_by_role("link", name="下一页 »").click()
    expect(page.locator("table.grid tbody tr")).to_have_count(20)
    page.goto(node.url + "/catalog")
    page.fill("input[name=q]", "低保")
    page.select_option("select[name=share]", "CONDITIONAL")
    page.get_by_role("button", name="检索").click()
    names = page.locator("td.name").all_inner_texts()
    assert names and all("低保" in n or "低收入" in n or "最低生活" in n or "困难" in n for n in names), names
    assert SCRIPT_NAME not in page.content()  # another department's draft is not listed
    page.get_by_role("link", name="311140001/000001").click()
    expect(page.locator("h1")).to_contain_text("城乡最低生活保障对象信息")
    assert "公民身份号码" in page.content() and "keep:6,4" in page.content()
    watch = page.locator("code.pre").inner_text()  # the feed position, as a command that resumes after it
    assert watch.startswith("exnode catalog watch --code-prefix 311140001/000001 --since cw1.")
    quality = page.locator("dl.quality").inner_text()  # 数据质量, as `exnode lists quality` shows it
    assert "每万条记录更正数" in quality and "0.00" in quality and "交付及时性" in quality
    snap(page, shots, "partner-resource")
    page.get_by_role("link", name="为此资源提交共享需求").click()
    page.fill("input[name=description]", "低保对象身份核验")
    page.get_by_role("button", name="查找匹配资源").click()
    expect(page.locator("table.grid tbody tr").first).to_be_visible()
    snap(page, shots, "partner-demand-suggestions")
    page.fill("#resource_code", "311140001/000001")
    page.fill("#purpose", "城市低保资格复核")
    page.fill("#legal_basis", "《社会救助暂行办法》第十一条")
    page.fill("#contact", "李明 0471-1234567")
    page.get_by_role("button", name="提交需求").click()
    expect(page.locator(".flash")).to_contain_text("已提交")
    expect(page.locator("table.grid").first.locator("tbody tr")).to_have_count(1)
    snap(page, shots, "partner-demands")
    page.close()


def test_administrator_sees_markup_as_text_publishes_and_reviewer_approves(node: ConsoleNode, browser: Browser,
                                                                          shots: Path):
    dialogs: list[str] = []
    page = sign_in(browser, node, ADMIN_DEPT, "catalog_admin", "reviewer", subject="admin-zhao")
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(node.url + "/admin/drafts")
    cell = page.locator("table.grid").first.locator("tbody tr td").nth(1)
    expect(cell).to_have_text(SCRIPT_NAME)  # shown as text, not run
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content()
    snap(page, shots, "admin-drafts")
    page.get_by_role("button", name="发布 311140001/000777").click()
    expect(page.locator(".flash")).to_contain_text("已发布 311140001/000777")
    page.goto(node.url + "/catalog?q=" + "alert")
    expect(page.locator("td.name")).to_have_text([SCRIPT_NAME])
    page.goto(node.url + "/catalog/r/311140001/000777")
    expect(page.locator("h1")).to_contain_text(SCRIPT_NAME)
    assert dialogs == []
    page.goto(node.url + "/review")
    snap(page, shots, "reviewer-queue")
    pending = page.locator("table.grid").first.locator("tbody tr")
    if "队列为空" in pending.first.inner_text():  # the partner's test did not run first (-k): file one now
        partner = issue(node.data, PARTNER_DEPT, "consumer")
        node.cli("lists", "file", "--resource", "311140001/000001", "--purpose", "复核", "--basis", "办法",
                 "--contact", "李明", token=partner)
        page.reload()
    button = page.get_by_role("button", name=re.compile(r"^批准 XQ"))
    button.first.click()
    expect(page.locator(".flash")).to_contain_text("已批准")
    page.goto(node.url + "/compliance")
    expect(page.locator("svg.chart")).to_have_count(1)
    snap(page, shots, "admin-compliance")
    page.close()


def test_operator_sees_health_outbox_dead_letters_and_tier_links(node: ConsoleNode, browser: Browser, shots: Path):
    page = sign_in(browser, node, ADMIN_DEPT, "operator", subject="ops-sun")
    page.goto(node.url + "/ops")
    expect(page.locator("h1")).to_have_text("运行状态")
    content = page.content()
    assert "数据库" in content and "正常" in content and "待投递" in content and "没有死信" in content
    snap(page, shots, "operator")
    page.close()


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(node: ConsoleNode, browser: Browser):
    page = sign_in(browser, node, ADMIN_DEPT, "catalog_admin")
    response = page.context.request.post(node.url + "/admin/retire", form={"code": "311140001/000001"})
    assert response.status == 403 and "CSRF" in response.text()
    response = page.context.request.post(node.url + "/admin/retire",
                                         form={"code": "311140001/000001", "csrf_token": "forged"})
    assert response.status == 403
    page.goto(node.url + "/catalog/r/311140001/000001")
    expect(page.locator("dl.fields dd").first).to_contain_text("发布")
    page.close()


def test_signing_in_with_a_pasted_token_and_signing_out(node: ConsoleNode, browser: Browser):
    page = browser.new_page()
    page.goto(node.url + "/login")
    page.fill("#token", "not-a-jwt")
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.locator(".error")).to_contain_text("令牌无效")
    page.fill("#token", issue(node.data, PARTNER_DEPT, "consumer"))
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.locator("h1")).to_contain_text("欢迎")
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(re.compile("/login"))
    page.goto(node.url + "/catalog")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fcatalog"))
    page.close()


FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea"


@pytest.mark.parametrize("path,roles", [("/login", ()), ("/audit", ("security_officer",)),
                                        ("/catalog", ("consumer",)), ("/demands/new", ("consumer",)),
                                        ("/admin/drafts", ("catalog_admin",)), ("/review", ("reviewer",))])
def test_keyboard_navigation_reaches_every_control(node: ConsoleNode, browser: Browser, path: str,
                                                   roles: tuple[str, ...]):
    page = sign_in(browser, node, ADMIN_DEPT, *roles) if roles else browser.new_page()
    page.goto(node.url + path)
    controls = page.locator(FOCUSABLE)
    expected = controls.count()
    marks = [controls.nth(i).evaluate(f"(el) => {{ el.dataset.kb = '{i}'; return 1; }}") for i in range(expected)]
    assert len(marks) == expected > 0
    reached: set[str] = set()
    for _ in range(expected + 40):  # a datetime-local input takes one Tab per part (year, month, ...)
        page.keyboard.press("Tab")
        mark = page.evaluate("() => document.activeElement && document.activeElement.dataset.kb || ''")
        if mark:
            reached.add(mark)
    assert len(reached) == expected, f"{path}: {expected - len(reached)} controls not reachable by Tab"
    page.close()


def test_an_expired_session_is_sent_to_sign_in(tmp_path: Path, browser: Browser):
    # 5 s, not less: on a loaded machine the sign-in and the first page alone took more than 1.5 s
    quick = ConsoleNode(tmp_path, sample=False, env={"EXNODE_CONSOLE_IDLE_TIMEOUT_S": "5"})
    try:
        page = sign_in(browser, quick, ADMIN_DEPT, "security_officer")
        page.goto(quick.url + "/audit")
        expect(page.locator("h1")).to_have_text("审计日志")
        time.sleep(5.5)
        page.goto(quick.url + "/audit/chain")
        expect(page).to_have_url(re.compile(r"/login\?next=%2Faudit%2Fchain&expired=1"))
        expect(page.locator(".flash")).to_contain_text("会话已超时")
    finally:
        quick.stop()


def test_bad_input_is_a_page_naming_the_field_and_never_an_internal_error(node: ConsoleNode, browser: Browser):
    page = sign_in(browser, node, ADMIN_DEPT, "security_officer", "consumer")
    for path, status, words in (("/audit?since=garbage", 400, "since"), ("/audit?page=forged", 400, "page_token"),
                                ("/audit/charts?days=abc", 400, "days"), ("/audit/entry/99999999", 404, "99999999"),
                                ("/catalog?share=BOGUS", 400, "share"), ("/catalog/r/nope/1", 404, "nope/1")):
        response = page.goto(node.url + path)
        assert response.status == status, path
        expect(page.locator(".error")).to_contain_text(words)
    assert "Traceback" not in node.log.read_text(errors="replace")
    page.close()


class FakeIdentityService:
    """The unified identity service's two OIDC endpoints on loopback: /authorize sends the browser back
    with a code; /token checks the code and the PKCE verifier and answers with a token the node trusts."""

    def __init__(self, keys_dir: Path, department: str, roles: list[str]) -> None:
        import base64
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlencode, urlsplit

        from security.identity import issue_dev_token

        issued: dict[str, str] = {}
        self.token_requests: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                code = os.urandom(8).hex()
                issued[code] = query["code_challenge"][0]
                self.send_response(302)
                self.send_header("location", query["redirect_uri"][0] + "?" + urlencode(
                    {"code": code, "state": query["state"][0]}))
                self.end_headers()

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers["content-length"])).decode())
                outer.token_requests.append(form)
                challenge = issued.pop(form["code"][0], None)
                verifier = form["code_verifier"][0].encode()
                expected = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
                if challenge != expected:
                    self.send_response(400)
                    self.end_headers()
                    return
                token = issue_dev_token(keys_dir, "node", "exnode:node", subject="oidc-user",
                                        department_code=department, roles=roles)
                body = json.dumps({"id_token": token, "token_type": "Bearer"}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_sign_in_through_the_identity_services_authorization_code_flow(tmp_path: Path, browser: Browser):
    console_port = free_port()
    redirect = f"http://127.0.0.1:{console_port}/login/oidc/callback"
    idp = None
    env = {"EXNODE_CONSOLE_LISTEN": f"127.0.0.1:{console_port}", "EXNODE_CONSOLE_OIDC_CLIENT_ID": "exnode-console",
           "EXNODE_CONSOLE_OIDC_REDIRECT_URI": redirect}
    exnode("init", "--data", str(tmp_path / "node"), "--dev")
    idp = FakeIdentityService(tmp_path / "node" / "keys", ADMIN_DEPT, ["security_officer"])
    env |= {"EXNODE_CONSOLE_OIDC_AUTHORIZATION_ENDPOINT": idp.url + "/authorize",
            "EXNODE_CONSOLE_OIDC_TOKEN_ENDPOINT": idp.url + "/token"}
    quick = ConsoleNode(tmp_path, sample=False, env=env, console_port=console_port)
    try:
        page = browser.new_context().new_page()
        page.goto(quick.url + "/audit/chain")
        page.get_by_role("link", name="统一身份认证登录").click()
        expect(page.locator("h1")).to_have_text("审计链状态")  # back where the person was going, signed in
        assert "oidc-user" in page.locator(".who").inner_text()
        assert idp.token_requests[0]["client_id"] == ["exnode-console"]
        # a callback with a state this browser did not start is refused, and audited
        response = page.goto(quick.url + "/login/oidc/callback?code=x&state=forged")
        assert response.status == 401 and "state" in page.content()
    finally:
        quick.stop()
        idp.close()
