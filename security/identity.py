"""Who is calling: bearer JWTs from the unified identity service (统一身份认证), verified offline.

Why it is built this way: a token is trusted only through keys this node was configured with (a JWKS
file or PEM files per issuer), never through anything the token itself names (``jku``, ``x5u``, an
embedded ``jwk``). The header's algorithm must be on the allow-list *and* fit the key's type, which
closes ``alg: none`` and the HS256-with-the-public-key-as-secret confusion before pyjwt even runs.
Every refusal carries a short ``reason`` (for metrics and the audit trail) and a message naming it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from catalog.codes import credit_code_problem
from security.errors import SecurityError

ROLES = frozenset({"catalog_admin", "provider", "consumer", "reviewer", "security_officer", "platform", "operator",
                   "coordinator"})
DEFAULT_ALGORITHMS = ("EdDSA", "ES256", "RS256")
_KEY_TYPES: dict[str, type] = {
    "EdDSA": ed25519.Ed25519PublicKey, "ES256": ec.EllipticCurvePublicKey, "RS256": rsa.RSAPublicKey,
}
MAX_TOKEN_BYTES = 8192
SYSTEM_ROLE = "system"


class AuthenticationError(SecurityError):
    """The caller could not be authenticated. ``reason`` is a stable tag: missing_token, malformed_token,
    algorithm_not_allowed, unknown_key, bad_signature, expired, not_yet_valid, wrong_issuer,
    wrong_audience, missing_claim, bad_claim."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a person or a platform acting for one department."""

    subject: str
    department_code: str
    roles: frozenset[str]
    issuer: str = ""
    token_id: str = ""
    expires_at: float = 0.0

    def has(self, role: str) -> bool:
        return role in self.roles

    @classmethod
    def system(cls, node_id: str) -> Principal:
        """The node itself (sample loading, maintenance jobs); never obtainable with a token."""
        return cls(subject=f"system:{node_id}", department_code="", roles=frozenset({SYSTEM_ROLE}))


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer this node accepts, with its verification keys by key id."""

    issuer: str
    keys: Mapping[str, Any]
    """kid → cryptography public key object."""


def _public_key_algorithm_fits(algorithm: str, key: Any) -> bool:
    kind = _KEY_TYPES.get(algorithm)
    if kind is None or not isinstance(key, kind):
        return False
    return not (algorithm == "ES256" and not isinstance(key.curve, ec.SECP256R1))


def load_jwks(path: Path) -> dict[str, Any]:
    """Keys of a JWKS file (``{"keys": [...]}``) by kid; a key without a kid gets its index as id."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        jwk_set = jwt.PyJWKSet.from_dict(document)
    except (OSError, ValueError, jwt.PyJWKSetError, jwt.InvalidKeyError) as error:
        raise ValueError(f"{path}: not a usable JWKS file: {error}") from None
    keys = {}
    for index, jwk in enumerate(jwk_set.keys):
        keys[jwk.key_id or str(index)] = jwk.key
    return keys


def load_pem_public_key(path: Path) -> Any:
    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a PEM public key: {error}") from None


@dataclass
class TokenVerifier:
    """Verifies bearer tokens for one audience against the trusted issuers."""

    issuers: Sequence[TrustedIssuer]
    audience: str
    algorithms: Sequence[str] = DEFAULT_ALGORITHMS
    leeway_s: float = 30.0
    clock: Any = time.time
    _cache: dict[str, Principal] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        unknown = [a for a in self.algorithms if a not in _KEY_TYPES]
        if unknown:
            raise ValueError(f"auth.algorithms: {', '.join(unknown)} not supported (use {', '.join(_KEY_TYPES)})")

    def verify(self, token: str) -> Principal:
        """The token's principal, or AuthenticationError naming what is wrong."""
        now = self.clock()
        cached = self._cache.get(token)
        if cached is not None and now <= cached.expires_at + self.leeway_s:
            return cached
        principal = self._verify(token, now)
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[token] = principal
        return principal

    def _verify(self, token: str, now: float) -> Principal:
        if not token:
            raise AuthenticationError("missing_token", "no bearer token: send 'authorization: Bearer <JWT>'")
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError("malformed_token", f"the token is over {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as error:  # DecodeError, and header checks (a non-string kid, crit)
            raise AuthenticationError("malformed_token", f"malformed token: {error}") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise AuthenticationError(
                "algorithm_not_allowed",
                f"token algorithm {algorithm!r} is not allowed (allowed: {', '.join(self.algorithms)})")
        issuer_name = unverified.get("iss")
        issuer = next((i for i in self.issuers if i.issuer == issuer_name), None)
        if issuer is None:
            raise AuthenticationError("wrong_issuer", f"token issuer {issuer_name!r} is not trusted by this node")
        kid = header.get("kid")
        if kid is None and len(issuer.keys) == 1:
            key = next(iter(issuer.keys.values()))
        else:
            key = issuer.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthenticationError("unknown_key", f"token key id {kid!r} is not a key of issuer {issuer_name!r}")
        if not _public_key_algorithm_fits(algorithm, key):
            raise AuthenticationError(
                "algorithm_not_allowed", f"token algorithm {algorithm!r} does not fit key {kid!r} of {issuer_name!r}")
        try:
            claims = jwt.decode(
                token, key, algorithms=[algorithm], audience=self.audience, issuer=issuer.issuer,
                leeway=self.leeway_s,
                # exp and nbf are checked below against the verifier's clock, not pyjwt's wall clock.
                options={"require": ["exp", "iss", "aud", "sub"], "verify_iat": False, "verify_exp": False,
                         "verify_nbf": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("expired", "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("not_yet_valid", "the token is not valid yet (nbf is in the future)") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError(
                "wrong_audience", f"the token is not for this node (audience must be {self.audience!r})") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("wrong_issuer", f"token issuer {issuer_name!r} is not trusted") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("bad_signature", "the token signature does not verify") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthenticationError("missing_claim", f"the token has no {error.claim!r} claim") from None
        except jwt.InvalidTokenError as error:
            raise AuthenticationError("malformed_token", f"invalid token: {error}") from None
        for claim in ("exp", "nbf"):
            if claim in claims and (isinstance(claims[claim], bool) or not isinstance(claims[claim], int | float)):
                raise AuthenticationError("malformed_token", f"the token's {claim!r} claim must be a number")
        if claims["exp"] + self.leeway_s < now:
            raise AuthenticationError("expired", "the token has expired")
        if "nbf" in claims and claims["nbf"] - self.leeway_s > now:
            raise AuthenticationError("not_yet_valid", "the token is not valid yet (nbf is in the future)")
        return _principal(claims)


def _principal(claims: Mapping[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise AuthenticationError("missing_claim", "the token's 'sub' claim is empty")
    dept = claims.get("dept")
    if dept in (None, ""):
        raise AuthenticationError("missing_claim", "the token has no 'dept' claim (department 统一社会信用代码)")
    if not isinstance(dept, str) or credit_code_problem(dept):
        raise AuthenticationError(
            "bad_claim", f"the token's 'dept' claim {dept!r} is not a 统一社会信用代码: {credit_code_problem(str(dept))}")
    roles = claims.get("roles")
    if isinstance(roles, str):
        roles = roles.split()
    if not roles:
        raise AuthenticationError("missing_claim", "the token has no 'roles' claim")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthenticationError("bad_claim", "the token's 'roles' claim must be a list of role names")
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        raise AuthenticationError("bad_claim", f"unknown role(s) {', '.join(unknown)} (known: {', '.join(sorted(ROLES))})")
    return Principal(subject=subject, department_code=dept, roles=frozenset(roles), issuer=str(claims["iss"]),
                     token_id=str(claims.get("jti", "")), expires_at=float(claims["exp"]))


# -- the development issuer ------------------------------------------------------------------------------

DEV_ISSUER_KEY = "dev-issuer.key.pem"


def dev_issuer_name(node_id: str) -> str:
    return f"exnode-dev:{node_id}"


def create_dev_issuer_key(keys_dir: Path) -> Path:
    """The development issuer's Ed25519 key (``exnode init``); idempotent."""
    path = keys_dir / DEV_ISSUER_KEY
    if path.exists():
        return path
    keys_dir.mkdir(parents=True, exist_ok=True)
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path


def _load_dev_private(keys_dir: Path) -> ed25519.Ed25519PrivateKey:
    path = keys_dir / DEV_ISSUER_KEY
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ValueError(f"{path}: no development issuer key (run exnode init)") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: unreadable development issuer key: {error}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path}: the development issuer key must be Ed25519")
    return key


def dev_issuer(keys_dir: Path, node_id: str) -> TrustedIssuer:
    public = _load_dev_private(keys_dir).public_key()
    return TrustedIssuer(dev_issuer_name(node_id), {"dev": public})


def issue_dev_token(
    keys_dir: Path, node_id: str, audience: str, *, subject: str, department_code: str, roles: Iterable[str],
    lifetime: dt.timedelta = dt.timedelta(hours=8), now: float | None = None, extra: Mapping[str, Any] | None = None,
) -> str:
    """A token from the development issuer: for local use and tests only."""
    role_list = sorted(set(roles))
    unknown = sorted(set(role_list) - ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)} (known: {', '.join(sorted(ROLES))})")
    problem = credit_code_problem(department_code)
    if problem:
        raise ValueError(f"--dept {department_code!r} is not a 统一社会信用代码: {problem}")
    issued = time.time() if now is None else now
    claims = {
        "iss": dev_issuer_name(node_id), "aud": audience, "sub": subject, "dept": department_code,
        "roles": role_list, "iat": int(issued), "nbf": int(issued), "exp": int(issued + lifetime.total_seconds()),
        "jti": uuid.uuid4().hex, **(extra or {}),
    }
    return jwt.encode(claims, _load_dev_private(keys_dir), algorithm="EdDSA", headers={"kid": "dev"})
