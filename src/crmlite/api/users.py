"""Users and org routes, with the keys of Zoho's users and org schemas
(zoho-crm-api.md §7; ../shared/reference/zoho-oas-v8/users.json and org.json)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crmlite.api.context import caller, require_family_scope, run, store_of
from crmlite.api.records import invalid_method
from crmlite.api.responses import JSON, no_content
from crmlite.api.settings import modified_since, not_modified
from crmlite.auth.principal import Principal
from crmlite.errors import RequestError, invalid_data
from crmlite.orgs import Org, User
from crmlite.records.render import format_time
from crmlite.store.base import Store

READ = ("read",)
MAX_IDS = 100
ADMIN = "Administrator"
# Zoho's ``type`` values, lower-cased, and which users each one lists.
USER_TYPES = {
    "allusers": lambda u: True,
    "activeusers": lambda u: u.status == "active",
    "deactiveusers": lambda u: u.status in ("inactive", "disabled"),
    "confirmedusers": lambda u: u.status != "deleted",
    "confirmedreportingusers": lambda u: u.status == "active",
    "notconfirmedusers": lambda u: False,
    "deletedusers": lambda u: u.status == "deleted",
    "activeconfirmedusers": lambda u: u.status == "active",
    "adminusers": lambda u: u.profile == ADMIN,
    "activeconfirmedadmins": lambda u: u.profile == ADMIN and u.status == "active",
    "currentuser": None,  # the caller
}
TAB = {"font_color": "#FFFFFF", "background": "#222222"}


def role_and_profile(user: User, org_id: int) -> tuple[dict[str, str], dict[str, str]]:
    admin = user.profile == ADMIN
    return ({"name": user.role, "id": str(org_id + (1 if admin else 2))},
            {"name": user.profile, "id": str(org_id + (3 if admin else 4))})


def describe_user(user: User, principal: Principal) -> dict[str, Any]:
    role, profile = role_and_profile(user, principal.org_id)
    creator = principal.users.get(user.created_by) if user.created_by else None
    offset = datetime.now(user.tz).utcoffset()
    created = format_time(user.created_time, principal.user.tz)
    out: dict[str, Any] = {
        "id": str(user.id),
        "zuid": user.zuid,
        "full_name": user.full_name,
        "last_name": user.last_name,
        "email": user.email,
        "role": role,
        "profile": profile,
        "status": user.status,
        "confirm": True,
        "type__s": "Regular User",
        "category": "regular_user",
        "time_zone": user.time_zone,
        "offset": int(offset.total_seconds() * 1000) if offset is not None else 0,
        "locale": "en_US",
        "country_locale": "en_US",
        "language": "en_US",
        "date_format": "MMM d, yyyy",
        "time_format": "HH:mm",
        "decimal_separator": "Period",
        "name_format__s": "Salutation,First Name,Last Name",
        "sort_order_preference__s": "First Name,Last Name",
        "default_tab_group": "0",
        "created_time": created,
        "created_by": creator.minified if creator is not None else None,
        "Modified_Time": created,
        "Reporting_To": None,
        "Isonline": user.id == principal.user.id,
        "personal_account": False,
        "microsoft": False,
        "sandboxDeveloper": False,
        "alias": None, "phone": None, "mobile": None, "fax": None, "website": None,
        "dob": None, "street": None, "city": None, "state": None, "zip": None, "country": None,
        "signature": None,
        "status_reason__s": None,
        "$current_shift": None,
        "$next_shift": None,
        "$shift_effective_from": None,
        "customize_info": {"notes_desc": None, "show_right_panel": None, "bc_view": None,
                           "unpin_recent_item": None, "show_home": False,
                           "show_detail_view": True},
        "theme": {"normal_tab": TAB, "selected_tab": TAB, "new_background": None,
                  "background": "#F3F0EB", "screen": "fixed", "type": "default"},
    }
    if user.first_name:
        out["first_name"] = user.first_name
    return out


def _positive(request: Request, name: str, default: int, limit: int | None = None) -> int:
    raw = request.query_params.get(name)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise invalid_data(param_name=name, expected_data_type="integer")
    value = int(raw)
    if limit is not None and value > limit:
        raise RequestError("LIMIT_EXCEEDED", "limit exceeded", {"limit": limit,
                                                                "param_name": name})
    return value


def _ids(request: Request) -> set[str] | None:
    raw = request.query_params.get("ids")
    if raw is None:
        return None
    ids = {i.strip() for i in raw.split(",") if i.strip()}
    if not ids or not all(i.isdigit() for i in ids):
        raise invalid_data(param_name="ids", expected_data_type="bigint")
    if len(ids) > MAX_IDS:
        raise RequestError("LIMIT_EXCEEDED", "limit exceeded", {"limit": MAX_IDS,
                                                                "param_name": "ids"})
    return ids


async def users(request: Request) -> Response:
    if request.method != "GET":
        raise invalid_method()
    principal = await caller(request)
    require_family_scope(principal, "users", READ)
    kind = (request.query_params.get("type") or "AllUsers").lower()
    if kind not in USER_TYPES:
        raise invalid_data(param_name="type", supported_values=[
            "AllUsers", "ActiveUsers", "DeactiveUsers", "ConfirmedUsers",
            "ConfirmedReportingUsers", "NotConfirmedUsers", "DeletedUsers",
            "ActiveConfirmedUsers", "AdminUsers", "ActiveConfirmedAdmins", "CurrentUser"])
    page = _positive(request, "page", 1)
    per_page = _positive(request, "per_page", 200, limit=200)
    ids = _ids(request)
    since = modified_since(request)
    pick = USER_TYPES[kind]
    chosen = ([principal.user] if pick is None
              else [u for u in principal.users.values() if pick(u)])
    if ids is not None:
        chosen = [u for u in chosen if str(u.id) in ids]
    if since is not None:
        if chosen and all(u.created_time <= since for u in chosen):
            return not_modified()
        chosen = [u for u in chosen if u.created_time > since]
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
    if not wanted.isdigit():
        raise RequestError("INVALID_DATA", "the id given seems to be invalid", {"id": wanted})
    found = principal.users.get(int(wanted)) if len(wanted) <= 19 else None
    if found is None:
        return no_content()
    since = modified_since(request)
    if since is not None and found.created_time <= since:
        return not_modified()
    return JSON({"users": [describe_user(found, principal)],
                 "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False}})


def describe_org(org: Org, principal: Principal) -> dict[str, Any]:
    admin = next((u for u in principal.users.values() if u.email == org.primary_email),
                 principal.user)
    return {
        "id": str(org.id),
        "zgid": org.zgid,
        "ezgid": org.zgid,
        "domain_name": f"org{org.zgid}",
        "company_name": org.company_name,
        "alias": None,
        "primary_email": org.primary_email,
        "primary_zuid": admin.zuid,
        "time_zone": org.time_zone,
        "currency": org.currency,
        "currency_symbol": "$",
        "currency_locale": "en_US",
        "iso_code": "USD",
        "country": "United States",
        "country_code": "US",
        "street": None, "city": None, "state": None, "zip": None,
        "phone": "", "mobile": None, "fax": None, "website": "",
        "employee_count": "0",
        "description": None,
        "photo_id": None,
        "mc_status": False,
        "gapps_enabled": False,
        "translation_enabled": False,
        "privacy_settings": False,
        "deletable_org_account": False,
        "hipaa_compliance_enabled": False,
        "lite_users_enabled": False,
        "oauth_presence": True,
        "max_per_page": 200,
        "call_icon": "",
        "zia_portal_id": None,
        "zia_zgid": 0,
        "type": "Production",
        "created_time": datetime.fromtimestamp(org.created_time, UTC).isoformat(),
        "license_details": {"paid": True, "paid_type": "enterprise",
                            "paid_expiry": "2099-12-31T23:59:59+00:00",
                            "users_license_purchased": len(principal.users),
                            "trial_type": None, "trial_expiry": None, "trial_action": "",
                            "portal_users_license_purchased": 0},
        "hierarchy_preferences": {"type": "Role_Hierarchy", "strictly_reporting": False},
        "checkin_preferences": {"restricted_event_types": None},
    }


def _org(store: Store, principal: Principal) -> dict[str, Any]:
    with store.read() as tx:
        rows = tx.execute("SELECT id, zgid, company_name, primary_email, time_zone, currency, "
                          "created_time, meta_version FROM orgs WHERE id = ?",
                          (principal.org_id,))
    return describe_org(Org(*rows[0]), principal)


async def org(request: Request) -> Response:
    if request.method != "GET":
        raise invalid_method()
    principal = await caller(request)
    require_family_scope(principal, "org", READ)
    return JSON({"org": [await run(request, _org, store_of(request), principal)]})
