"""Guards of a local app that can launch processes: host check, token off loopback, CSRF, headers.

* Bound to a loopback address, only ``Host: 127.0.0.1 / localhost / [::1]`` is served (DNS rebinding).
* Bound to anything else, every request needs the token printed with the URL (Jupyter's pattern):
  ``?token=`` once (it becomes an ``HttpOnly; SameSite=Strict`` cookie and is dropped from the URL),
  the cookie, or ``Authorization: token ...``.
* Every POST must come from this origin (``Origin`` / ``Sec-Fetch-Site``) and carry the per-process
  CSRF secret (form field ``csrf`` or header ``X-CSRF-Token``), which the handlers check.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["COOKIE", "Guard", "is_loopback", "new_token"]

COOKIE = "hyperscout_token"
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
_LOCAL_NAMES = {"127.0.0.1", "localhost", "::1"}
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def new_token() -> str:
    """48 hex characters, as Jupyter's."""
    return secrets.token_hex(24)


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware: host check, token, same-origin POSTs, security headers."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def _plain(self, send: Callable[[Any], Awaitable[None]], status: int, text: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
        body = (text + "\n").encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *(headers or [])]})
        await send({"type": "http.response.body", "body": body})

    def _token_ok(self, headers: dict[bytes, bytes], query: dict[str, str]) -> tuple[bool, bool]:
        """(authorised, came in the query string)."""
        assert self.token is not None
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("token ") and secrets.compare_digest(auth[6:].strip(), self.token):
            return True, False
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:
            pass
        if COOKIE in cookie and secrets.compare_digest(cookie[COOKIE].value, self.token):
            return True, False
        if "token" in query and secrets.compare_digest(query["token"], self.token):
            return True, True
        return False, False

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        host = _host_name(headers.get(b"host", b"").decode("latin-1"))
        if self.loopback_only and host not in _LOCAL_NAMES:
            await self._plain(send, 400, "hyperscout ui: invalid Host header; open http://127.0.0.1:PORT/")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self.token is not None:
            ok, in_query = self._token_ok(headers, query)
            if not ok:
                await self._plain(send, 403, "hyperscout ui: a token is required; open the URL printed by "
                                             "`hyperscout ui` (it ends in ?token=...)")
                return
            if in_query and scope["method"] == "GET":  # keep the token out of the address bar and history
                rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
                location = scope.get("path", "/") + (f"?{rest}" if rest else "")
                cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                await self._plain(send, 303, "see other", [(b"location", location.encode()),
                                                           (b"set-cookie", cookie.encode())])
                return
        if scope["method"] not in ("GET", "HEAD"):
            site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
            origin = headers.get(b"origin", b"").decode("latin-1")
            own = f"{scope.get('scheme', 'http')}://{headers.get(b'host', b'').decode('latin-1')}"
            if (site and site not in ("same-origin", "none")) or (origin and origin != own):
                await self._plain(send, 403, "hyperscout ui: cross-origin request refused")
                return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"same-origin")]
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
