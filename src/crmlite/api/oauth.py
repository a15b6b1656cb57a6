"""Zoho Accounts' OAuth routes: ``/oauth/v2/token``, ``/oauth/v2/token/revoke``, ``/oauth/v2/auth``.

Token errors are Zoho's ``{"error": "<code>"}`` with HTTP 400 (Zoho's SDK reads only the
body). ``api_domain`` is this server's own base URL, never a Zoho domain: Zoho's SDK
would otherwise send every later call to Zoho (zoho-sdk-client.md §1).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crmlite.api.context import run, store_of
from crmlite.api.responses import JSON
from crmlite.auth import oauth
from crmlite.auth.oauth import OAuthError


def _error(error: str, status: int = 400) -> JSON:
    return JSON({"error": error}, status_code=status)


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _params(request: Request) -> dict[str, str]:
    """Query string and form body together (the body wins), as Zoho Accounts takes them."""
    params = dict(request.query_params)
    raw = await request.body()
    if raw.strip():
        try:
            params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_request") from None
    if any("\x00" in k or "\x00" in v for k, v in params.items()):
        raise OAuthError("invalid_request")  # PostgreSQL text holds no NUL
    return params


async def token(request: Request) -> Response:
    if request.method != "POST":
        return _error("invalid_request_method", 405)
    try:
        params = await _params(request)
        issued = await run(request, oauth.token, store_of(request), params)
    except OAuthError as exc:
        return _error(exc.error)
    return JSON(issued.body(base_url(request)))


async def revoke(request: Request) -> Response:
    if request.method != "POST":
        return _error("invalid_request_method", 405)
    try:
        params = await _params(request)
    except OAuthError as exc:
        return _error(exc.error)
    value = params.get("token")
    if not value:
        return _error("invalid_request")
    await run(request, oauth.revoke, store_of(request), value)
    return JSON({"status": "success"})


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def authorize(request: Request) -> Response:
    """Consent without a login page: the code is the org admin's, then back to redirect_uri."""
    if request.method not in ("GET", "POST"):
        return _error("invalid_request_method", 405)
    try:
        params = await _params(request)
        code = await run(request, oauth.authorize, store_of(request), params.get("client_id"),
                         params.get("redirect_uri"), params.get("scope"),
                         params.get("response_type"), params.get("access_type"))
    except OAuthError as exc:
        return _error(exc.error)
    extra = {"code": code, "accounts-server": base_url(request)}
    if params.get("state"):
        extra["state"] = params["state"]
    return RedirectResponse(_with_query(params["redirect_uri"], extra), status_code=302)
