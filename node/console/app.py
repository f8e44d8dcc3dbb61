"""The console's web application: sign-in, sessions, CSRF, security headers, and the one wrapper every page
and action goes through, which authenticates the session, runs one use case of the node (the policy
inside it decides), maps the outcome through the node's one error table and audits the request exactly
like the matching RPC before the answer leaves."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import grpc
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from node.bootstrap import Node
from node.config import ConsoleSection
from node.grpc.errors import status_for
from node.grpc.limits import DepartmentLimits
from node.services.errors import AuditUnavailable, Throttled
from security.audit import AuditRecord
from security.identity import ROLES, AuthenticationError, Principal, issue_dev_token
from security.policy import AUDIT_TRAIL, CATALOG, NODE_STATE, Action, PermissionDenied, Target

from . import oidc
from .sessions import COOKIE, Session, SessionStore

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
LOGIN_CSRF_COOKIE = "exnode_console_login"
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
"""No script at all (the pages work without it), styles only from the console's own file."""

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
ROLE_NAMES = {
    "security_officer": "安全审计员", "consumer": "共享部门（使用方）", "provider": "数据提供方",
    "catalog_admin": "目录管理员", "reviewer": "审核员", "operator": "运维人员", "platform": "平台",
    "coordinator": "争议协调员",
}


@dataclass
class Context:
    """One console request as the use cases and the audit trail see it."""

    principal: Principal
    request_id: str
    session: Session
    target: str = ""
    detail: str = ""
    node: Node | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in named parts of the view (the catalog's search): sent as ``Server-Timing`` so a
    benchmark can tell the page's own cost from its use case's."""


@dataclass
class Page:
    """What a view returns: a template and its values (the wrapper renders it), or a redirect."""

    template: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    redirect: str = ""
    flash: str = ""
    response: Response | None = None


View = Callable[[Context, Request, FormData | None], Page]


@dataclass
class _Viewed:
    """A GET's session lookup and view, done in one worker thread: the session (None and why not), and the
    page or the exception the view raised."""

    session: Session | None
    why: str
    context: Context | None = None
    page: Page | None = None
    error: Exception | None = None


class ConsoleError(Exception):
    """A console-level refusal (bad CSRF token): HTTP status and a message for the page."""

    def __init__(self, status: int, result: str, message: str) -> None:
        self.status = status
        self.result = result
        super().__init__(message)


class Console:
    """The console of one node: its routes are registered by the role modules (``pages_*``)."""

    def __init__(self, node: Node, settings: ConsoleSection, *, clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.settings = settings
        self.clock = clock
        self.sessions = SessionStore(node.uow, settings.idle_timeout_s, settings.absolute_timeout_s, clock)
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                            autoescape=True, undefined=jinja2.StrictUndefined)
        self.templates.globals.update(role_names=ROLE_NAMES, urlencode=urlencode, quote=quote)
        self.templates.filters["when"] = _when
        self.routes: list[Route | Mount] = [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login_token, methods=["POST"]),
            Route("/login/dev", self.login_dev, methods=["POST"]),
            Route("/login/oidc", self.login_oidc, methods=["GET"]),
            Route("/login/oidc/callback", self.login_oidc_callback, methods=["GET"]),
            Route("/logout", self.logout, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
        ]
        self.dev = node.config.auth.trust_dev_issuer
        server = node.config.server
        self.limits = DepartmentLimits(max_streams=0, rate_per_s=server.department_requests_per_s,
                                       burst=server.department_burst)
        """The gRPC port's per-department request rate, applied to the console's pages too (a bucket of its
        own): a department's script scraping the console cannot take the node from the others either."""

    # -- assembly ---------------------------------------------------------------------------------------
    def page(self, path: str, rpc: str, view: View, *, methods: tuple[str, ...] = ("GET",)) -> None:
        """Register a view: ``rpc`` is the audit action of the matching RPC (``AuditService/QueryAudit``)."""
        async def endpoint(request: Request) -> Response:
            return await self.handle(request, rpc, view)
        self.routes.append(Route(path, endpoint, methods=list(methods)))

    def asgi(self) -> Starlette:
        app = Starlette(routes=self.routes, exception_handlers={404: self._not_found})
        app.state.console = self
        return _SecurityHeaders(app, secure=self.settings.tls)

    # -- the one path of every page -------------------------------------------------------------------
    async def handle(self, request: Request, rpc: str, view: View) -> Response:
        request_id = uuid.uuid4().hex
        cookie = request.cookies.get(COOKIE, "")
        viewed: _Viewed | None = None
        if request.method == "POST":  # the session first: no form is read for a request without one
            session, why = await asyncio.to_thread(self.sessions.get, cookie)
        else:  # the session and the page in one trip to a worker thread (the pool is shared with the RPCs)
            viewed = await asyncio.to_thread(self._session_and_view, cookie, request_id, request, view)
            session, why = viewed.session, viewed.why
        if session is None:
            target = "/login?" + urlencode({"next": _local_path(request), **({"expired": "1"} if why == "expired"
                                                                                 else {})})
            return RedirectResponse(target, status_code=303)
        context = viewed.context if viewed and viewed.context else Context(session.principal, request_id, session,
                                                                          node=self.node)
        form: FormData | None = None
        status, result, detail, page = 200, "OK", "", None
        retry_after = ""
        try:
            if viewed is not None:
                if viewed.error is not None:
                    raise viewed.error
                page = viewed.page
            else:  # a POST: its limit here, a GET's in the worker thread before its view
                self.limits.admit(session.principal.department_code)
                form = await request.form()
                if not hmac.compare_digest(str(form.get("csrf_token", "")), session.csrf_token):
                    raise ConsoleError(403, "PERMISSION_DENIED", "表单已失效或来源不明（CSRF 校验失败），请重新打开页面再提交")
                page = await asyncio.to_thread(view, context, request, form)
        except ConsoleError as error:
            status, result, detail = error.status, error.result, str(error)
        except Exception as error:
            code = status_for(error)
            if code is None:
                log.exception("console view failed", extra={"request_id": request_id})
                status, result, detail = 500, "INTERNAL", "内部错误，请求编号已记录"
            else:
                status, result, detail = HTTP_STATUS.get(code, 400), code.name, str(error)
                if isinstance(error, PermissionDenied):
                    detail = error.reason
                if isinstance(error, Throttled):  # Too Many Requests, and when to come back
                    status, retry_after = 429, str(max(1, math.ceil(error.retry_after_s)))
        try:
            await self.audit(context, request, rpc, result, detail)
        except AuditUnavailable as error:
            return self.render("error.html", {"status": 503, "message": str(error)}, context, status=503)
        if page is None:
            refused = self.render("error.html", {"status": status, "message": detail, "result": result}, context,
                                  status=status)
            if retry_after:
                refused.headers["retry-after"] = retry_after
            return refused
        if page.flash:
            await asyncio.to_thread(self.sessions.flash, session, page.flash)
        if page.redirect:
            return RedirectResponse(page.redirect, status_code=303, headers={"x-request-id": request_id})
        if page.response is not None:
            page.response.headers["x-request-id"] = request_id
            return page.response
        flash = await asyncio.to_thread(self.sessions.take_flash, session) if session.flash else []
        return self.render(page.template, page.values, context, flash=flash)

    def _session_and_view(self, cookie: str, request_id: str, request: Request, view: View) -> _Viewed:
        session, why = self.sessions.get(cookie)
        if session is None:
            return _Viewed(None, why)
        context = Context(session.principal, request_id, session, node=self.node)
        try:
            self.limits.admit(session.principal.department_code)
            return _Viewed(session, why, context, page=view(context, request, None))
        except Exception as error:  # handled by ``handle`` like a refusal of the POST path
            return _Viewed(session, why, context, error=error)

    async def audit(self, context: Context, request: Request, rpc: str, result: str, detail: str) -> None:
        """One entry per request, as the RPC interceptor writes it; the page waits for its commit."""
        principal = context.principal
        peer = f"console:{request.client.host if request.client else '?'}"
        text = f"console {request.method} {request.url.path}" + (f": {detail or context.detail}"
                                                                  if detail or context.detail else "")
        record = AuditRecord(
            at=dt.datetime.now(dt.UTC), request_id=context.request_id, subject=principal.subject,
            department_code=principal.department_code, roles=tuple(sorted(principal.roles)), action=rpc,
            target=context.target[:200], result=result, peer=peer[:100], detail=text[:2000])
        await asyncio.shield(asyncio.wrap_future(self.node.audit_writer.submit(record)))

    def render(self, template: str, values: Mapping[str, Any], context: Context | None = None, *,
               status: int = 200, flash: list[str] | None = None) -> HTMLResponse:
        """``flash``: the messages taken from the session for this page (``handle`` takes them)."""
        session = context.session if context else None
        html = self.templates.get_template(template).render(
            **values, areas=self.areas(context.principal) if context else set(), principal=context.principal if context else None, request_id=context.request_id if context
            else "", csrf_token=session.csrf_token if session else "", flash=flash or [], node_name=self.node.config.node.name,
            node_id=self.node.config.node.id, dev=self.dev, oidc=oidc.configured(self.settings))
        response = HTMLResponse(html, status_code=status)
        if context:
            response.headers["x-request-id"] = context.request_id
            if context.timings:
                response.headers["server-timing"] = ", ".join(f"{name};dur={seconds * 1000:.2f}"
                                                              for name, seconds in context.timings.items())
        return response

    def areas(self, principal: Principal) -> set[str]:
        """The parts of the console the policy lets this person into (the navigation shows only these)."""
        policy, department = self.node.policy, principal.department_code
        checks = {
            "audit": (Action.AUDIT_READ, AUDIT_TRAIL),
            "catalog": (Action.CATALOG_READ, CATALOG),
            "demands": (Action.DEMAND_FILE, Target.demand("", department, "")),
            "admin": (Action.CATALOG_CREATE, Target.resource("", department)),
            "review": (Action.DEMAND_DECIDE, Target.demand("", "", department)),
            "ops": (Action.NODE_OPERATE, NODE_STATE),
        }
        found = {name for name, (action, target) in checks.items() if policy.decide(principal, action, target)}
        if "catalog" in found:
            found.add("lists")
        return found

    async def _not_found(self, request: Request, error: Exception) -> Response:
        return HTMLResponse(self.templates.get_template("error.html").render(
            status=404, message="页面不存在", result="NOT_FOUND", principal=None, areas=set(), request_id="", csrf_token="",
            flash=[], node_name=self.node.config.node.name, node_id=self.node.config.node.id, dev=self.dev,
            oidc=False),
            status_code=404)

    # -- sign-in and sign-out ---------------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        values = {"login_csrf": token, "next": _safe_next(request.query_params.get("next", "/")),
                  "expired": request.query_params.get("expired") == "1", "error": "",
                  "roles": sorted(ROLES), "department": self.node.config.node.department_code}
        response = self.render("login.html", values)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=self.settings.tls,
                            path="/login")
        return response

    async def _login_form(self, request: Request) -> FormData | Response:
        """The sign-in form, or the refusal page when its CSRF token is not the one this browser was given."""
        form = await request.form()
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(str(form.get("csrf_token", "")), expected):
            return self.render("error.html", {"status": 403, "result": "PERMISSION_DENIED",
                                              "message": "登录表单已失效（CSRF 校验失败），请刷新页面"}, status=403)
        return form

    async def login_token(self, request: Request) -> Response:
        form = await self._login_form(request)
        if isinstance(form, Response):
            return form
        return await self._sign_in(request, str(form.get("token", "")).strip().removeprefix("Bearer ").strip(),
                                   "jwt", _safe_next(str(form.get("next", "/"))))

    async def login_dev(self, request: Request) -> Response:
        form = await self._login_form(request)
        if isinstance(form, Response):
            return form
        if not self.dev:
            return self.render("error.html", {"status": 403, "result": "PERMISSION_DENIED",
                                              "message": "本节点不信任开发签发者，开发登录不可用"}, status=403)
        config = self.node.config
        try:
            token = issue_dev_token(config.keys_dir, config.node.id, config.audience,
                                    subject=str(form.get("subject", "")).strip() or "console-dev",
                                    department_code=str(form.get("department", "")).strip(),
                                    roles=[str(r) for r in form.getlist("roles")],
                                    lifetime=dt.timedelta(seconds=self.settings.absolute_timeout_s))
        except ValueError as error:
            return await self._refuse_sign_in(request, f"开发登录失败：{error}", "dev", str(form.get("next", "/")))
        return await self._sign_in(request, token, "dev", _safe_next(str(form.get("next", "/"))))

    async def login_oidc(self, request: Request) -> Response:
        """Off to the identity service (the authorization-code flow); back at the callback."""
        if not oidc.configured(self.settings):
            return self.render("error.html", {"status": 404, "result": "NOT_FOUND",
                                              "message": "本节点未配置统一身份认证登录（console.oidc_*）"}, status=404)
        started = oidc.start(self.settings, _safe_next(request.query_params.get("next", "/")))
        response = RedirectResponse(started.redirect, status_code=303)
        # Lax: the identity service's redirect back is a cross-site navigation that must carry it
        response.set_cookie(oidc.STATE_COOKIE, started.cookie, httponly=True, samesite="lax",
                            secure=self.settings.tls, path="/login/oidc", max_age=600)
        return response

    async def login_oidc_callback(self, request: Request) -> Response:
        q = request.query_params
        if q.get("error"):
            return await self._refuse_sign_in(request, f"统一身份认证拒绝了登录：{q.get('error')}", "oidc", "/")
        try:
            token, next_path = await asyncio.to_thread(oidc.finish, self.settings,
                                                       request.cookies.get(oidc.STATE_COOKIE, ""),
                                                       q.get("state", ""), q.get("code", ""))
        except oidc.OidcError as error:
            return await self._refuse_sign_in(request, f"统一身份认证登录失败：{error}", "oidc", "/",
                                              reason=f"oidc: {error}")
        response = await self._sign_in(request, token, "oidc", _safe_next(next_path), bounce=True)
        response.delete_cookie(oidc.STATE_COOKIE, path="/login/oidc")
        return response

    async def _sign_in(self, request: Request, token: str, via: str, next_path: str, *, bounce: bool = False
                       ) -> Response:
        """``bounce``: arriving from the identity service, a redirect would still be part of a cross-site
        navigation, on which browsers withhold the SameSite=Strict session cookie; a page of this site
        that moves on by itself (meta refresh, no script) starts a same-site one."""
        try:
            principal = self.node.verifier.verify(token)
        except AuthenticationError as error:
            return await self._refuse_sign_in(request, f"令牌无效：{error}（{error.reason}）", via, next_path,
                                              reason=f"{error.reason}: {error}")
        session = await asyncio.to_thread(self.sessions.open, principal, via)
        context = Context(principal, uuid.uuid4().hex, session)
        await self.audit(context, request, "Console/SignIn", "OK", f"signed in ({via})")
        response: Response = RedirectResponse(next_path, status_code=303)
        if bounce:
            response = self.render("signed_in.html", {"next": next_path})
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", secure=self.settings.tls, path="/")
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    async def _refuse_sign_in(self, request: Request, message: str, via: str, next_path: str, *,
                              reason: str = "") -> Response:
        nobody = Principal("", "", frozenset())
        context = Context(nobody, uuid.uuid4().hex, Session("", nobody, "", 0, 0, 0))
        await self.audit(context, request, "Console/SignIn", "UNAUTHENTICATED", reason or message)
        token = secrets.token_urlsafe(24)
        response = self.render("login.html", {"login_csrf": token, "next": _safe_next(next_path), "expired": False,
                                              "error": message, "roles": sorted(ROLES),
                                              "department": self.node.config.node.department_code}, status=401)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=self.settings.tls,
                            path="/login")
        return response

    async def logout(self, request: Request) -> Response:
        session, _ = await asyncio.to_thread(self.sessions.get, request.cookies.get(COOKIE, ""))
        if session is not None:
            form = await request.form()
            if not hmac.compare_digest(str(form.get("csrf_token", "")), session.csrf_token):
                return self.render("error.html", {"status": 403, "result": "PERMISSION_DENIED",
                                                  "message": "CSRF 校验失败"}, status=403)
            await asyncio.to_thread(self.sessions.close, session.id)
            await self.audit(Context(session.principal, uuid.uuid4().hex, session), request, "Console/SignOut",
                             "OK", "")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


class _SecurityHeaders:
    """CSP without inline script, no framing, no sniffing, nothing cached (pages carry personal data)."""

    def __init__(self, app: Any, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]]
                       ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer"),
                            (b"cache-control", b"no-store")]
                if self.secure:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _local_path(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _safe_next(value: str) -> str:
    """Only a path of this console (no open redirect to another site)."""
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    return "—" if value in (None, "") else str(value)
