"""Bearer-token authentication of the HTTP transport, through the SDK's token-verifier hook."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class StaticTokenVerifier:
    """Accepts exactly one token, compared in constant time (as digests, so lengths leak nothing)."""

    def __init__(self, token: str):
        self._digest = hashlib.sha256(token.encode()).digest()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._digest):
            return AccessToken(token=token, client_id="evomcp-client", scopes=[])
        return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def auth_settings(base_url: str) -> AuthSettings:
    """The SDK wants an issuer: with a static token, this server is its own."""
    return AuthSettings(issuer_url=base_url, resource_server_url=f"{base_url}/mcp", required_scopes=[],
                        validate_token_resource=False)
