"""Users and org routes (the keys a client reads; Zoho's full sets are in reference §7)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crmlite.api.context import caller, require_family_scope, run, store_of
from crmlite.api.records import invalid_method
from crmlite.api.responses import JSON, no_content
from crmlite.auth.principal import Principal
from crmlite.errors import RequestError, invalid_data
from crmlite.orgs import User, first_org
from crmlite.records.render import format_time
from crmlite.store.base import Store

READ = ("read",)
USER_TYPES = {"allusers", "activeusers", "deactiveusers", "confirmedusers", "notconfirmedusers",
              "deletedusers", "activeconfirmedusers", "adminusers", "activeconfirmedadmins",
              "currentuser"}


def describe_user(user: User, principal: Principal) -> dict[str, Any]:
    admin = user.profile == "Administrator"
    return {
        "id": str(user.id),
        "zuid": user.zuid,
        "full_name": user.full_name,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "role": {"name": user.role, "id": str(principal.org_id + (1 if admin else 2))},
        "profile": {"name": user.profile, "id": str(principal.org_id + (3 if admin else 4))},
        "status": user.status,
        "confirm": True,
        "type__s": "Regular User",
        "time_zone": user.time_zone,
        "locale": "en_US",
        "country_locale": "en_US",
        "language": "en_US",
        "date_format": "MM-dd-yyyy",
        "time_format": "HH:mm",
        "created_time": format_time(user.created_time, principal.user.tz),
        "created_by": None,
        "Isonline": False,
    }


def _pick(principal: Principal, kind: str) -> list[User]:
    users = list(principal.users.values())
    if kind == "currentuser":
        return [principal.user]
    if kind in ("adminusers", "activeconfirmedadmins"):
        return [u for u in users if u.profile == "Administrator" and u.status == "active"]
    if kind in ("activeusers", "activeconfirmedusers", "confirmedusers"):
        return [u for u in users if u.status == "active"]
    if kind in ("deactiveusers", "deletedusers", "notconfirmedusers"):
        return [u for u in users if u.status != "active" and kind == "deactiveusers"]
    return users


async def users(request: Request) -> Response:
    if request.method != "GET":
        raise invalid_method()
    principal = await caller(request)
    require_family_scope(principal, "users", READ)
    kind = (request.query_params.get("type") or "AllUsers").lower()
    if kind not in USER_TYPES:
        raise invalid_data(param_name="type")
    try:
        page = max(1, int(request.query_params.get("page") or 1))
        per_page = min(200, max(1, int(request.query_params.get("per_page") or 200)))
    except ValueError:
        raise invalid_data(param_name="page") from None
    chosen = _pick(principal, kind)
    window = chosen[(page - 1) * per_page: page * per_page]
    if not window:
        return no_content()
    return JSON({"users": [describe_user(u, principal) for u in window],
                 "info": {"per_page": per_page, "count": len(window), "page": page,
                          "more_records": page * per_page < len(chosen)}})


async def user(request: Request) -> Response:
    if request.method != "GET":
        raise invalid_method()
    principal = await caller(request)
    require_family_scope(principal, "users", READ)
    wanted = request.path_params["user_id"]
    for u in principal.users.values():
        if str(u.id) == wanted:
            return JSON({"users": [describe_user(u, principal)]})
    raise RequestError("INVALID_DATA", "the id given seems to be invalid", {"id": wanted})


def _org(store: Store, principal: Principal) -> dict[str, Any]:
    with store.read() as tx:
        org = first_org(tx)
    assert org is not None
    return {
        "id": str(org.id),
        "zgid": org.zgid,
        "domain_name": f"org{org.zgid}",
        "company_name": org.company_name,
        "primary_email": org.primary_email,
        "primary_zuid": principal.user.zuid,
        "time_zone": org.time_zone,
        "currency": org.currency,
        "currency_symbol": "$",
        "currency_locale": "en_US",
        "iso_code": "USD",
        "country_code": "US",
        "mc_status": False,
        "type": "production",
        "hipaa_compliance_enabled": False,
        "license_details": {"paid": True, "paid_type": "enterprise", "users_license_purchased": 0,
                            "paid_expiry": None, "trial_type": None, "trial_expiry": None,
                            "portal_users_license_purchased": 0},
    }


async def org(request: Request) -> Response:
    if request.method != "GET":
        raise invalid_method()
    principal = await caller(request)
    require_family_scope(principal, "org", READ)
    return JSON({"org": [await run(request, _org, store_of(request), principal)]})
