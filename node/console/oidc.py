"""Sign-in through the unified identity service's OIDC authorization-code flow, with PKCE (RFC 7636).

The console redirects the browser to the identity service with a random ``state`` (kept in a cookie
bound to this browser) and a code challenge; the service sends the browser back with a code, which the
console exchanges at the token endpoint for the person's token. That token is then verified exactly like
a bearer token of an RPC (``auth.issuers``, ``auth.jwks_file``): the identity service is trusted for what
it signs, never for what the browser says.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from node.config import ConsoleSection

STATE_COOKIE = "exnode_console_oidc"
TIMEOUT_S = 10.0


class OidcError(Exception):
    """The flow failed; the message says where (for the sign-in page and the audit trail)."""


@dataclass(frozen=True)
class Started:
    redirect: str
    cookie: str
    """state.verifier.next — what the callback needs, kept in an HttpOnly cookie of this browser."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def configured(settings: ConsoleSection) -> bool:
    return bool(settings.oidc_authorization_endpoint)


def start(settings: ConsoleSection, next_path: str) -> Started:
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = _b64(hashlib.sha256(verifier.encode()).digest())
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": settings.oidc_client_id, "redirect_uri": settings.oidc_redirect_uri,
        "scope": settings.oidc_scope, "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
    separator = "&" if "?" in settings.oidc_authorization_endpoint else "?"
    return Started(f"{settings.oidc_authorization_endpoint}{separator}{query}",
                   f"{state}.{verifier}.{_b64(next_path.encode())}")


def finish(settings: ConsoleSection, cookie: str, state: str, code: str) -> tuple[str, str]:
    """The token from the identity service and the page to go to; OidcError naming the problem."""
    parts = cookie.split(".")
    if len(parts) != 3 or not state or not secrets.compare_digest(parts[0], state):
        raise OidcError("the sign-in came back with a state this browser did not start (expired or forged)")
    if not code:
        raise OidcError("the identity service returned no authorization code")
    verifier = parts[1]
    next_path = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4)).decode("utf-8", "replace")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": settings.oidc_redirect_uri,
            "client_id": settings.oidc_client_id, "code_verifier": verifier}
    if settings.oidc_client_secret:
        form["client_secret"] = settings.oidc_client_secret
    request = urllib.request.Request(settings.oidc_token_endpoint, data=urllib.parse.urlencode(form).encode(),
                                     headers={"content-type": "application/x-www-form-urlencoded",
                                              "accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            answer = json.loads(response.read(1024 * 1024))
    except urllib.error.HTTPError as error:
        raise OidcError(f"the token endpoint refused the code: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise OidcError(f"the token endpoint did not answer with JSON: {error}") from None
    token = answer.get("id_token") or answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise OidcError("the token endpoint's answer holds no id_token or access_token")
    return token, next_path
