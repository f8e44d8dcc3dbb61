"""TokenVerifier: each way a bearer token can be wrong is refused with its own reason and a message naming it.

Keys are generated here (Ed25519, P-256, RSA 2048); tokens that pyjwt refuses to make (``alg: none``, HS256
keyed with a PEM public key) are put together by hand. The verifier's clock is the test's: it starts at the
wall clock (pyjwt also looks at the wall clock, so the two must agree) and only moves when a test says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from security.identity import (
    DEV_ISSUER_KEY,
    MAX_TOKEN_BYTES,
    AuthenticationError,
    Principal,
    TokenVerifier,
    TrustedIssuer,
    create_dev_issuer_key,
    dev_issuer,
    dev_issuer_name,
    issue_dev_token,
    load_jwks,
)
from tests.conftest import OTHER_PROVIDER, PROVIDER

ISSUER = "https://iam.mca.example.gov.cn"
AUDIENCE = "exnode:mca-central"
DROP = object()
"""A claim value meaning: leave the claim out."""


class Clock:
    """Epoch seconds, frozen at the wall clock when made; tests move it."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    """One private key per supported algorithm, by kid."""
    return {
        "ed-1": ed25519.Ed25519PrivateKey.generate(),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


ALGORITHM_OF = {"ed-1": "EdDSA", "ec-1": "ES256", "rsa-1": "RS256"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(keys: dict[str, Any], clock: Clock) -> TokenVerifier:
    public = {kid: key.public_key() for kid, key in keys.items()}
    return TokenVerifier([TrustedIssuer(ISSUER, public)], AUDIENCE, clock=clock)


def claims(clock: Clock, **changes: object) -> dict[str, Any]:
    now = int(clock.now)
    document: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "zhang.san", "dept": PROVIDER, "roles": ["catalog_admin"],
        "iat": now, "nbf": now, "exp": now + 3600, "jti": "token-0001",
    }
    for name, value in changes.items():
        if value is DROP:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def sign(key: Any, algorithm: str, payload: dict[str, Any], kid: str | None) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def token(keys: dict[str, Any], clock: Clock, kid: str = "ed-1", **changes: object) -> str:
    return sign(keys[kid], ALGORITHM_OF[kid], claims(clock, **changes), kid)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(document: object) -> str:
    return b64(json.dumps(document).encode("utf-8"))


def public_pem(private: Any) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def refused(verifier: TokenVerifier, bearer: str, reason: str, *words: str) -> AuthenticationError:
    """The verifier refuses with ``reason``, and its message is non-empty and contains each of ``words``."""
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(bearer)
    error = caught.value
    assert error.reason == reason, f"{error.reason}: {error}"
    message = str(error)
    assert message.strip(), "an empty message names nothing"
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return error


# -- accepted ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kid", ["ed-1", "ec-1", "rsa-1"])
def test_valid_token_gives_the_principal(verifier, keys, clock, kid):
    principal = verifier.verify(token(keys, clock, kid, roles=["catalog_admin", "provider"]))
    assert isinstance(principal, Principal)
    assert principal.subject == "zhang.san"
    assert principal.department_code == PROVIDER
    assert principal.roles == frozenset({"catalog_admin", "provider"})
    assert principal.issuer == ISSUER
    assert principal.token_id == "token-0001"
    assert principal.expires_at == clock.now + 3600
    assert principal.has("provider") and not principal.has("consumer")


def test_roles_as_a_space_separated_string_are_accepted(verifier, keys, clock):
    principal = verifier.verify(token(keys, clock, roles="consumer  reviewer"))
    assert principal.roles == frozenset({"consumer", "reviewer"})


def test_single_key_issuer_accepts_a_token_without_kid(keys, clock):
    only = TokenVerifier([TrustedIssuer(ISSUER, {"ed-1": keys["ed-1"].public_key()})], AUDIENCE, clock=clock)
    principal = only.verify(sign(keys["ed-1"], "EdDSA", claims(clock), kid=None))
    assert principal.subject == "zhang.san"


def test_audience_list_containing_this_node_is_accepted(verifier, keys, clock):
    principal = verifier.verify(token(keys, clock, aud=["exnode:elsewhere", AUDIENCE]))
    assert principal.department_code == PROVIDER


def test_department_from_another_registrar_is_accepted(verifier, keys, clock):
    principal = verifier.verify(token(keys, clock, dept=OTHER_PROVIDER, roles=["consumer"]))
    assert principal.department_code == OTHER_PROVIDER


# -- malformed --------------------------------------------------------------------------------------------

def test_no_token_is_missing_token(verifier):
    refused(verifier, "", "missing_token", "Bearer")


@pytest.mark.parametrize("garbage", [
    "garbage",
    "a.b.c",
    "not base64!.eyJhIjoxfQ.sig",
    b64json(["not", "an", "object"]) + "." + b64json({"sub": "x"}) + ".c2ln",
    b64json({"alg": "EdDSA"}) + "." + b64(b"not json") + ".c2ln",
    b64json({"alg": "EdDSA"}) + "." + b64json([1, 2]) + ".c2ln",
], ids=["one-word", "three-words", "bad-base64", "header-not-object", "payload-not-json",
        "payload-not-object"])
def test_garbage_is_malformed_token(verifier, garbage):
    refused(verifier, garbage, "malformed_token", "malformed")


@pytest.mark.parametrize("header", [
    {"alg": "EdDSA", "kid": 5},
    {"alg": "EdDSA", "kid": ["ed-1"]},
    {"alg": "EdDSA", "kid": "ed-1", "crit": ["exp-extension"], "exp-extension": 1},
], ids=["numeric-kid", "list-kid", "unknown-critical-extension"])
def test_header_pyjwt_refuses_to_read_is_malformed_token_not_a_crash(verifier, keys, clock, header):
    """pyjwt raises InvalidTokenError (not DecodeError) for these while reading the header."""
    forged = f"{b64json(header)}.{b64json(claims(clock))}.{b64(b'x' * 64)}"
    refused(verifier, forged, "malformed_token", "malformed")


def test_too_long_token_is_malformed_token(verifier, keys, clock):
    padded = token(keys, clock, padding="x" * MAX_TOKEN_BYTES)
    assert len(padded) > MAX_TOKEN_BYTES
    refused(verifier, padded, "malformed_token", str(MAX_TOKEN_BYTES))


# -- algorithm confusion ----------------------------------------------------------------------------------

def test_alg_none_is_refused(verifier, clock):
    forged = f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(claims(clock))}."
    refused(verifier, forged, "algorithm_not_allowed", "'none'", "not allowed")


def test_alg_none_with_a_known_kid_is_refused(verifier, clock):
    forged = f"{b64json({'alg': 'none', 'kid': 'ed-1'})}.{b64json(claims(clock))}."
    refused(verifier, forged, "algorithm_not_allowed", "'none'")


@pytest.mark.parametrize("kid", ["ed-1", "ec-1", "rsa-1"])
def test_hs256_keyed_with_the_issuers_public_key_pem_is_refused(verifier, keys, clock, kid):
    """The classic confusion: the public key is public, so an HMAC keyed with it is forgeable by anyone."""
    header = b64json({"alg": "HS256", "typ": "JWT", "kid": kid})
    payload = b64json(claims(clock, roles=["catalog_admin", "operator"]))
    signing_input = f"{header}.{payload}".encode("ascii")
    mac = hmac.new(public_pem(keys[kid]), signing_input, hashlib.sha256).digest()
    forged = f"{header}.{payload}.{b64(mac)}"
    refused(verifier, forged, "algorithm_not_allowed", "'HS256'", "not allowed")


def test_es256_header_on_an_ed25519_key_is_refused(verifier, keys, clock):
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = sign(attacker, "ES256", claims(clock), kid="ed-1")
    refused(verifier, forged, "algorithm_not_allowed", "'ES256'", "'ed-1'")


@pytest.mark.parametrize(("algorithm", "kid"), [("EdDSA", "rsa-1"), ("RS256", "ec-1"), ("EdDSA", "ec-1")])
def test_header_algorithm_must_fit_the_key_type(verifier, clock, algorithm, kid):
    forged = f"{b64json({'alg': algorithm, 'kid': kid})}.{b64json(claims(clock))}.{b64(b'x' * 64)}"
    refused(verifier, forged, "algorithm_not_allowed", f"'{algorithm}'", f"'{kid}'")


def test_es256_on_a_p384_key_is_refused(clock):
    p384 = ec.generate_private_key(ec.SECP384R1())
    verifier = TokenVerifier([TrustedIssuer(ISSUER, {"p384": p384.public_key()})], AUDIENCE, clock=clock)
    forged = f"{b64json({'alg': 'ES256', 'kid': 'p384'})}.{b64json(claims(clock))}.{b64(b'x' * 64)}"
    refused(verifier, forged, "algorithm_not_allowed", "'ES256'")


def test_algorithm_outside_the_configured_allow_list_is_refused(keys, clock):
    public = {kid: key.public_key() for kid, key in keys.items()}
    ed_only = TokenVerifier([TrustedIssuer(ISSUER, public)], AUDIENCE, algorithms=("EdDSA",), clock=clock)
    refused(ed_only, token(keys, clock, "ec-1"), "algorithm_not_allowed", "'ES256'", "EdDSA")
    assert ed_only.verify(token(keys, clock, "ed-1")).subject == "zhang.san"


@pytest.mark.parametrize("algorithms", [("HS256",), ("EdDSA", "none"), ("RS256", "PS256")])
def test_symmetric_or_unknown_algorithms_cannot_be_configured(algorithms):
    with pytest.raises(ValueError, match="not supported") as caught:
        TokenVerifier([], AUDIENCE, algorithms=algorithms)
    assert algorithms[-1] in str(caught.value)


# -- keys and signatures ----------------------------------------------------------------------------------

def test_unknown_kid_is_unknown_key(verifier, clock):
    stranger = ed25519.Ed25519PrivateKey.generate()
    refused(verifier, sign(stranger, "EdDSA", claims(clock), kid="ed-9"), "unknown_key", "'ed-9'", ISSUER)


def test_no_kid_with_several_keys_is_unknown_key(verifier, keys, clock):
    refused(verifier, sign(keys["ed-1"], "EdDSA", claims(clock), kid=None), "unknown_key", "None")


@pytest.mark.parametrize("kid", ["ed-1", "ec-1", "rsa-1"])
def test_another_key_under_the_right_kid_is_bad_signature(verifier, clock, kid):
    impostor = {
        "ed-1": ed25519.Ed25519PrivateKey.generate,
        "ec-1": lambda: ec.generate_private_key(ec.SECP256R1()),
        "rsa-1": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }[kid]()
    refused(verifier, sign(impostor, ALGORITHM_OF[kid], claims(clock), kid), "bad_signature", "signature")


def test_claims_edited_after_signing_are_bad_signature(verifier, keys, clock):
    header, _, signature = token(keys, clock, roles=["consumer"]).split(".")
    escalated = b64json(claims(clock, roles=["catalog_admin", "operator"]))
    refused(verifier, f"{header}.{escalated}.{signature}", "bad_signature", "signature")


def test_empty_signature_on_an_eddsa_header_is_bad_signature(verifier, clock):
    forged = f"{b64json({'alg': 'EdDSA', 'kid': 'ed-1'})}.{b64json(claims(clock))}."
    error = refused(verifier, forged, "bad_signature")
    assert "signature" in str(error)


# -- time -------------------------------------------------------------------------------------------------

def test_expired_beyond_leeway_is_expired(verifier, keys, clock):
    expired = token(keys, clock, exp=int(clock.now) - 31, nbf=int(clock.now) - 600)
    refused(verifier, expired, "expired", "expired")


def test_expired_within_leeway_is_accepted(verifier, keys, clock):
    principal = verifier.verify(token(keys, clock, exp=int(clock.now) - 10, nbf=int(clock.now) - 600))
    assert principal.subject == "zhang.san"


def test_token_expires_by_the_verifiers_clock_even_after_it_was_accepted(verifier, keys, clock):
    bearer = token(keys, clock, exp=int(clock.now) + 60)
    assert verifier.verify(bearer).subject == "zhang.san"
    clock.now += 60 + 20  # within the leeway: still the cached principal
    assert verifier.verify(bearer).subject == "zhang.san"
    clock.now += 11  # 31 s past exp: beyond the 30 s leeway
    refused(verifier, bearer, "expired", "expired")


def test_nbf_in_the_future_is_not_yet_valid(verifier, keys, clock):
    refused(verifier, token(keys, clock, nbf=int(clock.now) + 600), "not_yet_valid", "nbf")


def test_nbf_within_leeway_is_accepted(verifier, keys, clock):
    assert verifier.verify(token(keys, clock, nbf=int(clock.now) + 10)).subject == "zhang.san"


def test_non_integer_exp_is_refused(verifier, keys, clock):
    error = refused(verifier, token(keys, clock, exp="tomorrow"), "malformed_token")
    assert "exp" in str(error)


# -- issuer and audience ----------------------------------------------------------------------------------

def test_wrong_issuer_is_wrong_issuer(verifier, keys, clock):
    refused(verifier, token(keys, clock, iss="https://evil.example.com"), "wrong_issuer",
            "'https://evil.example.com'", "not trusted")


def test_missing_issuer_is_wrong_issuer(verifier, keys, clock):
    refused(verifier, token(keys, clock, iss=DROP), "wrong_issuer", "None")


def test_wrong_audience_is_wrong_audience(verifier, keys, clock):
    refused(verifier, token(keys, clock, aud="exnode:elsewhere"), "wrong_audience", AUDIENCE)


def test_missing_audience_is_missing_claim(verifier, keys, clock):
    refused(verifier, token(keys, clock, aud=DROP), "missing_claim", "'aud'")


# -- claims -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "words"), [
    ({"sub": DROP}, ("'sub'",)),
    ({"sub": "   "}, ("'sub'",)),
    ({"exp": DROP}, ("'exp'",)),
    ({"dept": DROP}, ("'dept'",)),
    ({"dept": ""}, ("'dept'",)),
    ({"roles": DROP}, ("'roles'",)),
    ({"roles": []}, ("'roles'",)),
    ({"roles": ""}, ("'roles'",)),
], ids=["no-sub", "blank-sub", "no-exp", "no-dept", "empty-dept", "no-roles", "empty-roles",
        "empty-role-string"])
def test_missing_claims_are_missing_claim(verifier, keys, clock, changes, words):
    refused(verifier, token(keys, clock, **changes), "missing_claim", *words)


@pytest.mark.parametrize(("changes", "words"), [
    ({"dept": PROVIDER[:-1] + "5"}, ("'dept'", "check character", "'4'")),
    ({"dept": PROVIDER[:-1]}, ("'dept'", "18 characters")),
    ({"dept": "11100000mb01284764"}, ("'dept'", "alphabet")),
    ({"dept": 11100000}, ("'dept'",)),
    ({"roles": ["catalog_admin", "superuser"]}, ("superuser", "unknown role")),
    ({"roles": ["system"]}, ("system", "unknown role")),
    ({"roles": "consumer root"}, ("root",)),
    ({"roles": ["consumer", 7]}, ("'roles'", "list of role names")),
    ({"roles": {"consumer": True}}, ("'roles'", "list of role names")),
], ids=["dept-check-character", "dept-short", "dept-lower-case", "dept-number", "unknown-role", "system-role",
        "unknown-role-in-string", "role-not-string", "roles-object"])
def test_bad_claims_are_bad_claim(verifier, keys, clock, changes, words):
    refused(verifier, token(keys, clock, **changes), "bad_claim", *words)


def test_system_principal_is_not_obtainable_with_a_token(verifier, keys, clock):
    refused(verifier, token(keys, clock, roles=["system", "catalog_admin"]), "bad_claim", "system")
    assert Principal.system("n1").has("system")


# -- key material from files ------------------------------------------------------------------------------

def test_jwks_file_keys_verify_tokens(tmp_path: Path, clock):
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_jwk = {**OKPAlgorithm.to_jwk(ed.public_key(), as_dict=True), "kid": "iam-ed-2026", "use": "sig"}
    ec_jwk = {**ECAlgorithm.to_jwk(p256.public_key(), as_dict=True), "kid": "iam-ec-2026", "use": "sig"}
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)  # no kid: known by its index
    path = tmp_path / "iam-jwks.json"
    path.write_text(json.dumps({"keys": [ed_jwk, ec_jwk, rsa_jwk]}), encoding="utf-8")

    loaded = load_jwks(path)
    assert set(loaded) == {"iam-ed-2026", "iam-ec-2026", "2"}
    assert isinstance(loaded["iam-ed-2026"], ed25519.Ed25519PublicKey)
    assert isinstance(loaded["iam-ec-2026"], ec.EllipticCurvePublicKey)
    assert isinstance(loaded["2"], rsa.RSAPublicKey)

    verifier = TokenVerifier([TrustedIssuer(ISSUER, loaded)], AUDIENCE, clock=clock)
    assert verifier.verify(sign(ed, "EdDSA", claims(clock), "iam-ed-2026")).subject == "zhang.san"
    assert verifier.verify(sign(p256, "ES256", claims(clock, sub="li.si"), "iam-ec-2026")).subject == "li.si"
    assert verifier.verify(sign(rsa_key, "RS256", claims(clock, sub="wang.wu"), "2")).subject == "wang.wu"
    refused(verifier, sign(ed, "EdDSA", claims(clock), "iam-ec-2026"), "algorithm_not_allowed", "'EdDSA'")


@pytest.mark.parametrize("content", ["not json", '{"keys": "nope"}', '{"keys": [{"kty": "EC"}]}'],
                         ids=["not-json", "keys-not-list", "incomplete-key"])
def test_unusable_jwks_file_is_a_value_error_naming_the_file(tmp_path: Path, content):
    path = tmp_path / "broken-jwks.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="not a usable JWKS file") as caught:
        load_jwks(path)
    assert str(path) in str(caught.value)


def test_missing_jwks_file_is_a_value_error_naming_the_file(tmp_path: Path):
    with pytest.raises(ValueError, match="missing-jwks.json"):
        load_jwks(tmp_path / "missing-jwks.json")


# -- the development issuer -------------------------------------------------------------------------------

def test_dev_issuer_round_trip(tmp_path: Path, clock):
    keys_dir = tmp_path / "keys"
    path = create_dev_issuer_key(keys_dir)
    assert path == keys_dir / DEV_ISSUER_KEY
    assert os.stat(path).st_mode & 0o777 == 0o600
    first = path.read_bytes()
    assert create_dev_issuer_key(keys_dir) == path and path.read_bytes() == first  # idempotent

    issuer = dev_issuer(keys_dir, "n1")
    assert issuer.issuer == dev_issuer_name("n1") == "exnode-dev:n1"
    assert set(issuer.keys) == {"dev"}
    bearer = issue_dev_token(keys_dir, "n1", "exnode:n1", subject="dev.user", department_code=OTHER_PROVIDER,
                             roles=["consumer", "reviewer", "consumer"], now=clock.now)
    assert jwt.get_unverified_header(bearer)["kid"] == "dev"
    verifier = TokenVerifier([issuer], "exnode:n1", clock=clock)
    principal = verifier.verify(bearer)
    assert principal.subject == "dev.user"
    assert principal.department_code == OTHER_PROVIDER
    assert principal.roles == frozenset({"consumer", "reviewer"})
    assert principal.issuer == "exnode-dev:n1"
    assert principal.token_id and principal.expires_at == clock.now + 8 * 3600

    other_node = TokenVerifier([dev_issuer(keys_dir, "n2")], "exnode:n2", clock=clock)
    refused(other_node, bearer, "wrong_issuer", "exnode-dev:n1")


def test_dev_token_from_another_dev_key_is_bad_signature(tmp_path: Path, clock):
    create_dev_issuer_key(tmp_path / "a")
    create_dev_issuer_key(tmp_path / "b")
    bearer = issue_dev_token(tmp_path / "b", "n1", "exnode:n1", subject="x", department_code=PROVIDER,
                             roles=["consumer"], now=clock.now)
    verifier = TokenVerifier([dev_issuer(tmp_path / "a", "n1")], "exnode:n1", clock=clock)
    refused(verifier, bearer, "bad_signature", "signature")


def test_dev_issuer_refuses_to_mint_bad_claims(tmp_path: Path):
    create_dev_issuer_key(tmp_path)
    with pytest.raises(ValueError, match="unknown role.*root"):
        issue_dev_token(tmp_path, "n1", "exnode:n1", subject="x", department_code=PROVIDER, roles=["root"])
    with pytest.raises(ValueError, match="check character"):
        issue_dev_token(tmp_path, "n1", "exnode:n1", subject="x", department_code=PROVIDER[:-1] + "5",
                        roles=["consumer"])


def test_dev_issuer_without_its_key_names_the_fix(tmp_path: Path):
    with pytest.raises(ValueError, match="exnode init"):
        dev_issuer(tmp_path, "n1")
    (tmp_path / DEV_ISSUER_KEY).write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="must be Ed25519"):
        dev_issuer(tmp_path, "n1")
