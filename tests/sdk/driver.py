"""Drive Zoho's official Python SDK (zohocrmsdk8-0 or zohocrmsdk7-0, unmodified) at crmlite.

Run by tests/test_sdk.py in a subprocess, with the interpreter of the virtual environment
that holds the SDK (both SDKs install the package ``zohocrmsdk``, so they cannot share
one). Reads a JSON config on stdin; prints one JSON object: what the SDK made of each
reply (classes, codes, and the values it parsed). It asserts nothing itself: the test
compares these observations with what it sent and with what the server stored.

Standard library and the SDK only: this file must not import crmlite or the tests.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import traceback
from typing import Any

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
from zohocrmsdk.src.com.zoho.api.logger import Logger
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.fields import FieldsOperations, GetFieldsParam
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.modules import ModulesOperations
from zohocrmsdk.src.com.zoho.crm.api.org import OrgOperations
from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap
from zohocrmsdk.src.com.zoho.crm.api.record import (
    BodyWrapper,
    DeleteRecordsParam,
    GetRecordsParam,
    Record,
    RecordOperations,
    SearchRecordsParam,
)
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig
from zohocrmsdk.src.com.zoho.crm.api.users import GetUsersParam, UsersOperations
from zohocrmsdk.src.com.zoho.crm.api.util import Choice


def kind(obj: Any) -> str | None:
    return None if obj is None else type(obj).__name__


def value(obj: Any) -> Any:
    """A Choice's value, a date/datetime in ISO, an SDK object by its id, else the object."""
    if isinstance(obj, Choice):
        return obj.get_value()
    if isinstance(obj, datetime.datetime | datetime.date):
        return obj.isoformat()
    if isinstance(obj, Record):
        return {"class": kind(obj), "id": obj.get_id(), "name": obj.get_key_value("name")}
    if hasattr(obj, "get_id"):
        return {"class": kind(obj), "id": obj.get_id(),
                "name": obj.get_name() if hasattr(obj, "get_name") else None,
                "email": obj.get_email() if hasattr(obj, "get_email") else None}
    return obj


def action_items(response: Any) -> dict[str, Any]:
    """An ActionHandler reply: the wrapper's class and each data item as the SDK parsed it."""
    obj = response.get_object()
    out: dict[str, Any] = {"status_code": response.get_status_code(), "class": kind(obj)}
    if obj is None or not hasattr(obj, "get_data"):
        if obj is not None:
            out["code"] = value(obj.get_code())
        return out
    items = []
    for item in obj.get_data():
        details = item.get_details() or {}
        entry = {"class": kind(item), "status": value(item.get_status()),
                 "code": value(item.get_code()), "message": value(item.get_message()),
                 "details": {k: value(v) for k, v in details.items()}}
        if hasattr(item, "get_action"):
            entry["action"] = value(item.get_action())
            entry["duplicate_field"] = item.get_duplicate_field()
        duplicate = details.get("duplicate_record")
        if duplicate is not None and hasattr(duplicate, "get_id"):
            entry["duplicate_record_id"] = duplicate.get_id()
        items.append(entry)
    out["items"] = items
    return out


def read_records(response: Any, fields: list[str]) -> dict[str, Any]:
    """A ResponseHandler reply: records as the SDK typed them, and the info block."""
    obj = response.get_object()
    out: dict[str, Any] = {"status_code": response.get_status_code(), "class": kind(obj)}
    if obj is None or not hasattr(obj, "get_data"):
        if obj is not None:
            out["code"] = value(obj.get_code())
        return out
    records = []
    for record in obj.get_data():
        row: dict[str, Any] = {"id": record.get_id(), "types": {}}
        for name in fields:
            raw = record.get_key_value(name)
            row[name] = value(raw)
            row["types"][name] = kind(raw)
        records.append(row)
    out["records"] = records
    info = obj.get_info()
    if info is not None:
        out["info"] = {"per_page": info.get_per_page(), "count": info.get_count(),
                       "page": info.get_page(), "more_records": info.get_more_records()}
    return out


def initialise(cfg: dict[str, Any]) -> None:
    base = cfg["base"]
    environment = DataCenter.Environment(base, base + "/oauth/v2/token", base)
    flavour = cfg["flavour"]
    if flavour == "grant":
        token = OAuthToken(client_id=cfg["client_id"], client_secret=cfg["client_secret"],
                           grant_token=cfg["grant_token"], redirect_url=cfg.get("redirect_url"))
    elif flavour == "refresh":
        token = OAuthToken(client_id=cfg["client_id"], client_secret=cfg["client_secret"],
                           refresh_token=cfg["refresh_token"])
    else:
        token = OAuthToken(access_token=cfg["access_token"])
    work = cfg["workdir"]
    Initializer.initialize(
        environment=environment, token=token, store=FileStore(work + "/sdk_tokens.csv"),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=True),
        resource_path=work, logger=Logger.get_instance(Logger.Levels.INFO, work + "/sdk.log"))


def contact(cfg: dict[str, Any], **values: Any) -> Record:
    record = Record()
    for name, item in values.items():
        record.add_key_value(name, item)
    return record


def body(records: list[Record], duplicate_check: list[str] | None = None) -> BodyWrapper:
    wrapper = BodyWrapper()
    wrapper.set_data(records)
    if duplicate_check is not None:
        wrapper.set_duplicate_check_fields(duplicate_check)
    wrapper.set_trigger([])
    return wrapper


def run(cfg: dict[str, Any], out: dict[str, Any]) -> None:
    initialise(cfg)
    module, ext, p = "Contacts", cfg["external_field"], cfg["prefix"]
    ops = RecordOperations(module)
    account = Record()
    account.set_id(int(cfg["account_id"]))
    email, email2 = f"{p}.one@example.com", f"{p}.two@example.com"

    first = contact(cfg, Last_Name=f"{p} Probe", First_Name="Pat", Email=email,
                    Lead_Source=Choice("Partner"), Date_of_Birth=datetime.date(1990, 1, 2),
                    Email_Opt_Out=True, Account_Name=account, **{ext: f"{p}-EXT-1"})
    out["upsert_insert"] = action_items(ops.upsert_records(body([first], ["Email"])))
    out["upsert_by_email"] = action_items(ops.upsert_records(body(
        [contact(cfg, Last_Name=f"{p} Probe", Email=email, Title="Matched on Email")],
        ["Email"])))
    out["upsert_by_external"] = action_items(ops.upsert_records(body(
        [contact(cfg, Last_Name=f"{p} Probe", Email=email2, **{ext: f"{p}-EXT-1"})])))

    created = [contact(cfg, Last_Name=f"{p} Created", Email=f"{p}.created@example.com"),
               contact(cfg, Last_Name=f"{p} Copy", **{ext: f"{p}-EXT-1"}),
               contact(cfg, First_Name="No Last Name")]
    out["create"] = action_items(ops.create_records(body(created)))

    record_id = out["upsert_insert"]["items"][0]["details"]["id"]
    update = Record()
    update.set_id(int(record_id))
    update.add_key_value("Title", "Updated by the SDK")
    update.add_key_value("Phone", "+1 555 0100")
    out["update"] = action_items(ops.update_records(body([update])))

    fields = ["Last_Name", "First_Name", "Email", "Title", "Phone", "Lead_Source",
              "Date_of_Birth", "Email_Opt_Out", "Account_Name", "Owner", "Created_Time",
              "Modified_Time", ext]
    out["get_record"] = read_records(ops.get_record(int(record_id)), fields)

    params = ParameterMap()
    params.add(GetRecordsParam.fields, f"Last_Name,Email,{ext}")
    params.add(GetRecordsParam.page, 1)
    params.add(GetRecordsParam.per_page, 200)
    out["get_records"] = read_records(ops.get_records(params), ["Last_Name", "Email", ext])

    search = ParameterMap()
    search.add(SearchRecordsParam.criteria, f"(Email:equals:{email2})")
    out["search_criteria"] = read_records(ops.search_records(search), ["Last_Name", "Email"])
    search = ParameterMap()
    search.add(SearchRecordsParam.email, email2)
    out["search_email"] = read_records(ops.search_records(search), ["Last_Name"])
    search = ParameterMap()
    search.add(SearchRecordsParam.criteria, f"(Last_Name:equals:{p} nobody)")
    out["search_none"] = read_records(ops.search_records(search), ["Last_Name"])

    created_id = out["create"]["items"][0]["details"].get("id")
    delete = ParameterMap()
    for rid in (record_id, created_id):
        delete.add(DeleteRecordsParam.ids, str(rid))
    out["delete"] = action_items(ops.delete_records(delete))
    out["get_deleted"] = read_records(ops.get_record(int(record_id)), ["Last_Name"])

    users = ParameterMap()
    try:
        users.add(GetUsersParam.type, "CurrentUser")
    except SDKException:  # zohocrmsdk7-0 types this parameter as a Choice
        users.add(GetUsersParam.type, Choice("CurrentUser"))
    reply = UsersOperations().get_users(users).get_object()
    out["users"] = {"class": kind(reply), "emails": [u.get_email() for u in reply.get_users()]
                    if hasattr(reply, "get_users") else None}
    reply = OrgOperations().get_organization().get_object()
    out["org"] = {"class": kind(reply), "zgid": [o.get_zgid() for o in reply.get_org()]
                  if hasattr(reply, "get_org") else None}
    reply = ModulesOperations().get_modules().get_object()
    out["modules"] = {"class": kind(reply),
                      "api_names": [m.get_api_name() for m in reply.get_modules()]
                      if hasattr(reply, "get_modules") else None}
    field_params = ParameterMap()
    field_params.add(GetFieldsParam.module, module)
    reply = FieldsOperations().get_fields(field_params).get_object()
    out["fields"] = {"class": kind(reply),
                     "types": {f.get_api_name(): f.get_data_type() for f in reply.get_fields()}
                     if hasattr(reply, "get_fields") else None}


def main() -> None:
    cfg = json.load(sys.stdin)
    out: dict[str, Any] = {}
    try:
        run(cfg, out)
    except Exception as exc:  # report it to the test, in the SDK's own words
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()
    with open(cfg["workdir"] + "/sdk.log", encoding="utf-8") as log:  # the SDK logs its URLs
        out["api_versions"] = sorted(set(re.findall(r"/crm/(v\d+)/", log.read())))
    sys.stdout.write(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
