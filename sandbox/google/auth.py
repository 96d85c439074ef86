"""Service-account auth as Google does it (reference §2): a generated key file whose
``token_uri`` points at the sandbox, the JWT-bearer token endpoint that verifies the
assertion's RS256 signature with the account's public key, and bearer-token checks.

Token lifetimes run on wall time, not the sandbox clock: google-auth computes ``iat``/``exp``
and token expiry from the host's clock, and the sandbox clock is frozen in tests.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.google.dispatch import DISCOVERY_DOCS, Principal, discovery_methods

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth always signs aud=https://oauth2.googleapis.com/token, whatever token_uri is (§2.2);
# the two older Google token URLs are accepted by Google too.
GOOGLE_TOKEN_AUDIENCES = frozenset({
    "https://oauth2.googleapis.com/token", "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token"})
TOKEN_LIFETIME_SECONDS = 3599  # Google's expires_in (§2.2): clients refresh ~once an hour
MAX_ASSERTION_LIFETIME_SECONDS = 3600  # Google refuses assertions valid for more than 1 h
CLOCK_SKEW_SECONDS = 300
DRIVE_SCOPES = frozenset(f"https://www.googleapis.com/auth/{s}" for s in (
    "drive", "drive.file", "drive.readonly", "drive.metadata.readonly"))
RSA_KEY_BITS = 2048
SHORT_LIVED_JWT = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                   "reasonable timeframe. Check your iat and exp values in the JWT claim.")


@cache
def _private_key() -> rsa.RSAPrivateKey:
    """One throwaway RSA key per process: generating keys is slow and tokens are per sandbox."""
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)


def known_scopes() -> frozenset[str]:
    """Every scope the emulated APIs declare, plus Drive's (gspread's defaults)."""
    scopes: set[str] = set(DRIVE_SCOPES)
    for api in DISCOVERY_DOCS:
        for method in discovery_methods(api).values():
            scopes |= method.scopes
    return frozenset(scopes)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class ServiceAccount:
    """The sandbox's service account and its key."""

    email: str
    client_id: str
    project_id: str
    key_id: str

    def key_info(self, token_uri: str) -> dict[str, str]:
        """The JSON key file, as the Cloud console downloads it (§2.1)."""
        pem = _private_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        quoted = self.email.replace("@", "%40")
        return {
            "type": "service_account", "project_id": self.project_id,
            "private_key_id": self.key_id, "private_key": pem, "client_email": self.email,
            "client_id": self.client_id, "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url":
                f"https://www.googleapis.com/robot/v1/metadata/x509/{quoted}",
            "universe_domain": "googleapis.com",
        }


class TokenError(Exception):
    """An OAuth error answer of the token endpoint (RFC 6749 §5.2)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class _Token:
    principal: Principal
    expires_at: float


class TokenIssuer:
    """Verifies JWT-bearer assertions, issues access tokens and resolves bearer headers.

    ``delegation`` is the Admin console's domain-wide delegation list: client id -> scopes
    the account may use while impersonating a user of ``domain``.
    """

    def __init__(self, account: ServiceAccount, domain: str,
                 delegation: dict[str, set[str]]) -> None:
        self.account = account
        self.domain = domain
        self.delegation = delegation
        self.scopes = known_scopes()
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        """Answer POST /token (raises TokenError)."""
        if form.get("grant_type") != JWT_BEARER_GRANT:
            raise TokenError(400, "unsupported_grant_type",
                             f"Invalid grant_type: {form.get('grant_type', '')}")
        claims = self._verify(form.get("assertion", ""))
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes or not scopes <= self.scopes:
            raise TokenError(400, "invalid_scope",
                             "Invalid OAuth scope or ID token audience provided.")
        subject = claims.get("sub")
        if subject and subject != self.account.email:
            if not str(subject).endswith("@" + self.domain):
                raise TokenError(400, "invalid_grant", "Invalid email or User ID")
            granted = self.delegation.get(self.account.client_id, set())
            if not scopes <= granted:
                raise TokenError(401, "unauthorized_client",
                                 "Client is unauthorized to retrieve access tokens using this "
                                 "method, or client not authorized for any of the scopes "
                                 "requested.")
        else:
            subject = None
        access = "ya29.sandbox-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access] = _Token(Principal(self.account.email, subject, scopes),
                                          time.time() + TOKEN_LIFETIME_SECONDS)
            self.issued += 1
        return {"access_token": access, "expires_in": TOKEN_LIFETIME_SECONDS,
                "token_type": "Bearer"}

    def _verify(self, assertion: str) -> dict[str, Any]:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise TokenError(400, "invalid_grant", "Invalid JWT: malformed assertion.")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            raise TokenError(400, "invalid_grant", "Invalid JWT: malformed assertion.") from None
        if header.get("alg") != "RS256":
            raise TokenError(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("iss") != self.account.email:
            raise TokenError(400, "invalid_grant", "Invalid grant: account not found")
        if header.get("kid") not in (None, self.account.key_id):
            raise TokenError(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            _private_key().public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(),
                hashes.SHA256())
        except InvalidSignature:
            raise TokenError(400, "invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("aud") not in GOOGLE_TOKEN_AUDIENCES:
            raise TokenError(400, "invalid_grant", "Invalid JWT: the audience is not Google's "
                                                   "token endpoint.")
        now = time.time()
        try:
            issued, expires = float(claims["iat"]), float(claims["exp"])
        except (KeyError, TypeError, ValueError):
            raise TokenError(400, "invalid_grant", SHORT_LIVED_JWT) from None
        if (expires - issued > MAX_ASSERTION_LIFETIME_SECONDS
                or issued > now + CLOCK_SKEW_SECONDS or expires < now - CLOCK_SKEW_SECONDS):
            raise TokenError(400, "invalid_grant", SHORT_LIVED_JWT)
        return claims  # type: ignore[no-any-return]

    def principal(self, authorization: str | None) -> Principal | None:
        """The principal of a valid ``Authorization: Bearer`` header, else None."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        with self._lock:
            token = self._tokens.get(authorization[7:].strip())
        if token is None or token.expires_at <= time.time():
            return None
        return token.principal

    def expire_all(self) -> None:
        """Make every issued token invalid (tests: the next call gets 401 and refreshes)."""
        with self._lock:
            self._tokens.clear()
