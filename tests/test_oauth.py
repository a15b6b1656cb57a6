"""The OAuth 2.0 token server: Self Client codes from the CLI, the browser code flow,
refresh, client credentials, revocation, and what a token may touch."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import Client, Server, cli
from tests.test_auth import stored_token_rows

ALL = "ZohoCRM.modules.ALL,ZohoCRM.users.ALL,ZohoCRM.org.ALL,ZohoCRM.settings.ALL," \
      "ZohoSearch.securesearch.READ"
REDIRECT = "http://localhost:9/callback"


def new_client(server: Server, *args: str) -> tuple[str, str]:
    made = json.loads(cli(server.database_url, "client", "create", "--name", "App", *args))
    assert set(made) == {"client_id", "client_secret"}
    return made["client_id"], made["client_secret"]


def grant(server: Server, client_id: str, scope: str = ALL, *args: str) -> str:
    return cli(server.database_url, "grant", "create", "--client-id", client_id,
               "--scope", scope, *args)


def token_call(server: Server, as_query: bool = False, **params: str) -> httpx.Response:
    url = server.base + "/oauth/v2/token"
    if as_query:
        return httpx.post(url, params=params, timeout=30)
    return httpx.post(url, data=params, timeout=30)


def exchange(server: Server, client_id: str, secret: str, code: str, **extra: str) -> dict:
    reply = token_call(server, grant_type="authorization_code", client_id=client_id,
                       client_secret=secret, code=code, **extra)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    return reply.json()


def current_email(server: Server, access_token: str) -> str:
    reply = server.client(access_token).get("/crm/v8/users?type=CurrentUser")
    assert reply.status_code == 200, reply.text
    return reply.json()["users"][0]["email"]


def test_self_client_code_refresh_and_zoho_errors(shared_server: Server) -> None:
    client_id, secret = new_client(shared_server)
    assert client_id.startswith("1000.") and len(secret) >= 32
    code = grant(shared_server, client_id)

    issued = exchange(shared_server, client_id, secret, code)
    assert set(issued) == {"access_token", "refresh_token", "api_domain", "token_type",
                           "expires_in"}
    assert issued["api_domain"] == shared_server.base
    assert (issued["token_type"], issued["expires_in"]) == ("Bearer", 3600)
    assert issued["access_token"] != issued["refresh_token"]
    assert current_email(shared_server, issued["access_token"]) == "admin@crmlite.local"

    # a code is good once
    again = token_call(shared_server, grant_type="authorization_code", client_id=client_id,
                       client_secret=secret, code=code)
    assert (again.status_code, again.json()) == (400, {"error": "invalid_code"})

    # refresh_token grant, parameters in the query string as Zoho's docs show it
    refreshed = token_call(shared_server, as_query=True, grant_type="refresh_token",
                           client_id=client_id, client_secret=secret,
                           refresh_token=issued["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert set(body) == {"access_token", "api_domain", "token_type", "expires_in"}
    assert body["access_token"] != issued["access_token"]
    assert current_email(shared_server, body["access_token"]) == "admin@crmlite.local"
    assert current_email(shared_server, issued["access_token"]) == "admin@crmlite.local"

    other_id, other_secret = new_client(shared_server)
    cases = [
        ({"grant_type": "refresh_token", "client_id": client_id, "client_secret": "wrong",
          "refresh_token": issued["refresh_token"]}, "invalid_client_secret"),
        ({"grant_type": "refresh_token", "client_id": "1000.NOSUCHCLIENT",
          "client_secret": secret, "refresh_token": issued["refresh_token"]}, "invalid_client"),
        ({"grant_type": "refresh_token", "client_id": other_id, "client_secret": other_secret,
          "refresh_token": issued["refresh_token"]}, "invalid_code"),
        ({"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret,
          "refresh_token": issued["access_token"]}, "invalid_code"),
        ({"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret},
         "invalid_code"),
        ({"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret,
          "code": "1000.made.up"}, "invalid_code"),
        ({"grant_type": "password", "client_id": client_id, "client_secret": secret},
         "unsupported_grant_type"),
        ({"client_id": client_id, "client_secret": secret}, "invalid_request"),
    ]
    for params, error in cases:
        reply = token_call(shared_server, **params)
        assert (reply.status_code, reply.json()) == (400, {"error": error}), params
    # a code made for one client is no good to another
    code = grant(shared_server, client_id)
    reply = token_call(shared_server, grant_type="authorization_code", client_id=other_id,
                       client_secret=other_secret, code=code)
    assert reply.json() == {"error": "invalid_code"}
    assert "access_token" in exchange(shared_server, client_id, secret, code)


def test_expired_code_is_refused(shared_server: Server) -> None:
    client_id, secret = new_client(shared_server)
    code = grant(shared_server, client_id, ALL, "--expires-in", "1")
    time.sleep(1.2)
    reply = token_call(shared_server, grant_type="authorization_code", client_id=client_id,
                       client_secret=secret, code=code)
    assert reply.json() == {"error": "invalid_code"}


def test_browser_code_flow_end_to_end(shared_server: Server) -> None:
    client_id, secret = new_client(shared_server, "--redirect-uri", REDIRECT)
    auth = shared_server.base + "/oauth/v2/auth"
    params = {"scope": "ZohoCRM.modules.ALL,ZohoCRM.users.READ", "client_id": client_id,
              "response_type": "code", "redirect_uri": REDIRECT, "access_type": "offline",
              "state": "xyz 1", "prompt": "consent"}
    reply = httpx.get(auth, params=params, follow_redirects=False, timeout=30)
    assert reply.status_code == 302, reply.text
    location = urlsplit(reply.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == "xyz 1"
    assert query["accounts-server"] == shared_server.base
    issued = exchange(shared_server, client_id, secret, query["code"], redirect_uri=REDIRECT)
    assert issued["api_domain"] == shared_server.base and issued["refresh_token"]
    # the code belongs to the org's admin, with the scopes asked for and no others
    assert current_email(shared_server, issued["access_token"]) == "admin@crmlite.local"
    user = shared_server.client(issued["access_token"])
    assert user.get("/crm/v8/org").json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert user.upsert("Leads", [{"Last_Name": "From browser"}]).status_code == 200

    # access_type=online (Zoho's default): an access token and no refresh token
    online = httpx.get(auth, params={**params, "access_type": "online"}, timeout=30)
    code = parse_qs(urlsplit(online.headers["location"]).query)["code"][0]
    assert "refresh_token" not in exchange(shared_server, client_id, secret, code,
                                           redirect_uri=REDIRECT)
    # the redirect_uri of the token call must be the registered one
    again = httpx.get(auth, params=params, timeout=30)
    code = parse_qs(urlsplit(again.headers["location"]).query)["code"][0]
    reply = token_call(shared_server, grant_type="authorization_code", client_id=client_id,
                       client_secret=secret, code=code, redirect_uri="http://evil.example/cb")
    assert reply.json() == {"error": "invalid_redirect_uri"}

    for change, error in [({"client_id": "1000.NOPE"}, "invalid_client"),
                          ({"redirect_uri": "http://evil.example/cb"}, "invalid_redirect_uri"),
                          ({"scope": "Everything"}, "invalid_scope"),
                          ({"response_type": "token"}, "unsupported_response_type")]:
        reply = httpx.get(auth, params={**params, **change}, follow_redirects=False, timeout=30)
        assert (reply.status_code, reply.json()) == (400, {"error": error}), change


def test_client_credentials_with_soid(shared_server: Server) -> None:
    client_id, secret = new_client(shared_server)
    org = shared_server.client().get("/crm/v8/org").json()["org"][0]
    for soid in (f"ZohoCRM.{org['id']}", f"ZohoCRM.{org['zgid']}"):
        reply = token_call(shared_server, grant_type="client_credentials", client_id=client_id,
                           client_secret=secret, scope="ZohoCRM.users.READ", soid=soid)
        body = reply.json()
        assert set(body) == {"access_token", "api_domain", "token_type", "expires_in"}, body
        assert current_email(shared_server, body["access_token"]) == "admin@crmlite.local"
        scoped = shared_server.client(body["access_token"])
        assert scoped.get("/crm/v8/Leads?fields=Last_Name").status_code == 401
    for extra, error in [({}, "missing_org_info"), ({"soid": "ZohoCRM.123"}, "invalid_org_info"),
                         ({"soid": f"ZohoCRM.{org['id']}", "scope": "bad"}, "invalid_scope")]:
        params = {"grant_type": "client_credentials", "client_id": client_id,
                  "client_secret": secret, "scope": "ZohoCRM.users.READ", **extra}
        assert token_call(shared_server, **params).json() == {"error": error}, extra


ROUTES = [
    ("POST", "/crm/v8/Contacts/upsert", {"data": [{"Last_Name": "x"}]}),
    ("POST", "/crm/v8/Contacts", {"data": [{"Last_Name": "x"}]}),
    ("PUT", "/crm/v8/Contacts", {"data": [{"id": "1", "Last_Name": "x"}]}),
    ("PUT", "/crm/v8/Contacts/1", {"data": [{"Last_Name": "x"}]}),
    ("GET", "/crm/v8/Contacts?fields=Last_Name", None),
    ("GET", "/crm/v8/Contacts/1", None),
    ("GET", "/crm/v8/Contacts/search?criteria=(Last_Name:equals:x)", None),
    ("DELETE", "/crm/v8/Contacts?ids=1", None),
    ("DELETE", "/crm/v8/Contacts/1", None),
    ("GET", "/crm/v8/settings/fields?module=Contacts", None),
    ("GET", "/crm/v8/settings/fields/1?module=Contacts", None),
    ("POST", "/crm/v8/settings/fields?module=Contacts", {"fields": []}),
    ("GET", "/crm/v8/settings/modules", None),
    ("GET", "/crm/v8/settings/modules/Contacts", None),
    ("POST", "/crm/v8/settings/modules", {"modules": []}),
    ("GET", "/crm/v8/users?type=CurrentUser", None),
    ("GET", "/crm/v8/users/1", None),
    ("GET", "/crm/v8/org", None),
    ("GET", "/crm/v7/Contacts/search?email=a@b.com", None),
]


def refused_everywhere(client: Client) -> None:
    for method, path, body in ROUTES:
        reply = client.request(method, path, json=body)
        assert reply.status_code == 401, (method, path, reply.text)
        assert reply.json() == {"code": "INVALID_TOKEN", "details": {},
                                "message": "invalid oauth token", "status": "error"}


def test_revoked_and_expired_tokens_are_refused_on_every_route(shared_server: Server) -> None:
    client_id, secret = new_client(shared_server)
    issued = exchange(shared_server, client_id, secret, grant(shared_server, client_id))
    second = token_call(shared_server, grant_type="refresh_token", client_id=client_id,
                        client_secret=secret, refresh_token=issued["refresh_token"]).json()
    for token in (issued["access_token"], second["access_token"]):
        assert current_email(shared_server, token) == "admin@crmlite.local"

    # revoking an access token ends that token only
    reply = httpx.post(shared_server.base + "/oauth/v2/token/revoke",
                       params={"token": second["access_token"]}, timeout=30)
    assert (reply.status_code, reply.json()) == (200, {"status": "success"})
    refused_everywhere(shared_server.client(second["access_token"]))
    assert current_email(shared_server, issued["access_token"]) == "admin@crmlite.local"

    # revoking the refresh token ends it and every access token it gave
    reply = httpx.post(shared_server.base + "/oauth/v2/token/revoke",
                       data={"token": issued["refresh_token"]}, timeout=30)
    assert reply.json() == {"status": "success"}
    refused_everywhere(shared_server.client(issued["access_token"]))
    reply = token_call(shared_server, grant_type="refresh_token", client_id=client_id,
                       client_secret=secret, refresh_token=issued["refresh_token"])
    assert reply.json() == {"error": "invalid_code"}
    assert httpx.post(shared_server.base + "/oauth/v2/token/revoke",
                      timeout=30).json() == {"error": "invalid_request"}

    # an access token past its hour (minted short by the CLI: the same check)
    short = cli(shared_server.database_url, "token", "create", "--expires-in", "1")
    time.sleep(1.2)
    refused_everywhere(shared_server.client(short))


def test_a_write_sees_a_revocation_and_new_fields_made_by_another_process(
        server: Server) -> None:
    """A process remembers the tokens it checked and a write starts from that (one round
    trip less); the write must still see what another process changed meanwhile."""
    other = Server(server.database_url)  # a second process on the same database
    try:
        token = cli(server.database_url, "token", "create")
        mine, theirs = server.client(token), other.client()
        assert mine.upsert("Contacts", [{"Last_Name": "First"}]).status_code == 200

        # the other process adds an external field; this one's next write knows it
        theirs.add_field("Contacts", field_label="Sync ID", data_type="text",
                         external={"type": "org", "show": True})
        reply = mine.upsert("Contacts", [{"Last_Name": "Synced", "Sync_ID": "S-1"}])
        [item] = reply.json()["data"]
        assert item["action"] == "insert", reply.text
        again = mine.upsert("Contacts", [{"Last_Name": "Synced again", "Sync_ID": "S-1"}])
        [second] = again.json()["data"]
        assert (second["action"], second["duplicate_field"], second["details"]["id"]) == (
            "update", "Sync_ID", item["details"]["id"])
        assert theirs.record("Contacts", item["details"]["id"])["Sync_ID"] == "S-1"
        # ... and a module made there, and the new field named where the request refers to it
        made = theirs.post("/crm/v8/settings/modules",
                           {"modules": [{"singular_label": "Project", "plural_label": "Projects"}]})
        assert made.status_code == 201, made.text
        reply = mine.upsert("Projects", [{"Name": "Apollo"}])
        assert reply.json()["data"][0]["action"] == "insert", reply.text
        theirs.add_field("Contacts", field_label="Ref", data_type="text", unique={})
        reply = mine.upsert("Contacts", [{"Last_Name": "By ref", "Ref": "R-1"}],
                            duplicate_check_fields=["Ref"])
        assert reply.json()["data"][0]["action"] == "insert", reply.text

        # the other process revokes the token: this one refuses the next write, unwritten
        revoked = httpx.post(other.base + "/oauth/v2/token/revoke", params={"token": token},
                             timeout=30)
        assert revoked.json() == {"status": "success"}
        for write in (lambda: mine.upsert("Contacts", [{"Last_Name": "Late", "Sync_ID": "S-2"}]),
                      lambda: mine.post("/crm/v8/Contacts", {"data": [{"Last_Name": "Late"}]})):
            reply = write()
            assert reply.status_code == 401, reply.text
            assert reply.json()["code"] == "INVALID_TOKEN"
        found = theirs.get("/crm/v8/Contacts/search?criteria=(Last_Name:equals:Late)")
        assert found.status_code == 204, found.text
    finally:
        other.stop()


def test_thirty_access_tokens_per_refresh_token(shared_server: Server) -> None:
    client_id, secret = new_client(shared_server)
    issued = exchange(shared_server, client_id, secret, grant(shared_server, client_id))
    tokens = [issued["access_token"]]
    for _ in range(30):
        tokens.append(token_call(shared_server, grant_type="refresh_token", client_id=client_id,
                                 client_secret=secret,
                                 refresh_token=issued["refresh_token"]).json()["access_token"])
    alive = [shared_server.client(t).get("/crm/v8/users?type=CurrentUser").status_code == 200
             for t in tokens]
    assert alive.count(True) == 30 and alive[-1]


def test_a_token_touches_only_what_its_scopes_cover(shared_server: Server) -> None:
    admin = shared_server.client()
    cli(shared_server.database_url, "user", "add", "--email", "reader@example.com",
        "--name", "Rita Reader")
    contact = admin.upsert("Contacts", [{"Last_Name": "Scoped", "Email": "scoped@example.com"}])
    rid = contact.json()["data"][0]["details"]["id"]
    client_id, secret = new_client(shared_server)
    code = grant(shared_server, client_id, "ZohoCRM.modules.contacts.READ", "--user",
                 "reader@example.com")
    issued = exchange(shared_server, client_id, secret, code)
    reader = shared_server.client(issued["access_token"])

    assert reader.get(f"/crm/v8/Contacts/{rid}").json()["data"][0]["Last_Name"] == "Scoped"
    assert reader.get("/crm/v8/Contacts?fields=Last_Name").status_code == 200
    refused = [
        reader.upsert("Contacts", [{"Last_Name": "No"}]),
        reader.post("/crm/v8/Contacts", {"data": [{"Last_Name": "No"}]}),
        reader.put(f"/crm/v8/Contacts/{rid}", {"data": [{"Last_Name": "No"}]}),
        reader.delete(f"/crm/v8/Contacts/{rid}"),
        reader.get("/crm/v8/Leads?fields=Last_Name"),
        reader.get("/crm/v8/Contacts/search?criteria=(Last_Name:equals:Scoped)"),
        reader.get("/crm/v8/users?type=CurrentUser"),
        reader.get("/crm/v8/org"),
        reader.get("/crm/v8/settings/fields?module=Contacts"),
        reader.get("/crm/v8/settings/modules"),
    ]
    for reply in refused:
        assert reply.status_code == 401, (reply.request.url, reply.text)
        assert reply.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert admin.record("Contacts", rid)["Last_Name"] == "Scoped"

    # the refresh token keeps the grant's user and scopes
    again = token_call(shared_server, grant_type="refresh_token", client_id=client_id,
                       client_secret=secret, refresh_token=issued["refresh_token"]).json()
    refreshed = shared_server.client(again["access_token"])
    assert refreshed.upsert("Contacts", [{"Last_Name": "No"}]).status_code == 401
    wider = exchange(shared_server, client_id, secret, grant(
        shared_server, client_id, "ZohoCRM.users.READ", "--user", "reader@example.com"))
    assert current_email(shared_server, wider["access_token"]) == "reader@example.com"


def test_secrets_and_tokens_are_stored_hashed(shared_server: Server) -> None:
    client_id, secret = new_client(shared_server)
    code = grant(shared_server, client_id)
    issued = exchange(shared_server, client_id, secret, code)
    cells = [str(c) for row in stored_token_rows(shared_server.database_url) for c in row]
    cells += [str(c) for row in client_rows(shared_server.database_url) for c in row]
    assert client_id in cells
    for value in (secret, code, issued["access_token"], issued["refresh_token"]):
        assert not any(value in cell for cell in cells)


def client_rows(database_url: str) -> list[tuple]:
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url[len("sqlite:///"):]) as conn:
            return conn.execute("SELECT * FROM oauth_clients").fetchall()
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT * FROM oauth_clients").fetchall()


@pytest.mark.parametrize("args", [
    ["grant", "create", "--client-id", "1000.NOPE", "--scope", "ZohoCRM.modules.ALL"],
    ["grant", "create", "--client-id", "1000.NOPE", "--scope", "nonsense"],
    ["client", "create"],
])
def test_cli_refuses_bad_input_without_a_traceback(shared_server: Server, args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "crmlite", *args, "--database",
                           shared_server.database_url], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


def test_unknown_user_for_a_grant(shared_server: Server) -> None:
    client_id, _ = new_client(shared_server)
    done = subprocess.run([sys.executable, "-m", "crmlite", "grant", "create", "--client-id",
                           client_id, "--scope", "ZohoCRM.modules.ALL", "--user",
                           "ghost@example.com", "--database", shared_server.database_url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ghost@example.com" in done.stderr


@pytest.mark.parametrize(("method", "path", "content"), [
    ("POST", "/oauth/v2/token", b"\xff\xfe\x00"),
    ("POST", "/oauth/v2/token", b"grant_type=refresh_token&client_id=1000.%00&client_secret=x"
                                b"&refresh_token=y"),
    ("POST", "/oauth/v2/token", b"grant_type=client_credentials&client_id=%00"),
    ("POST", "/oauth/v2/token/revoke", b"token=%00"),
    ("GET", "/oauth/v2/auth?client_id=%00&response_type=code", b""),
    ("PUT", "/oauth/v2/token", b""),
    ("POST", "/oauth/v2/token", b"grant_type=" + b"a" * 100_000),
])
def test_odd_token_requests_never_500(shared_server: Server, method: str, path: str,
                                      content: bytes) -> None:
    reply = httpx.request(method, shared_server.base + path, content=content, timeout=30,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= reply.status_code < 500, reply.text
    assert set(reply.json()) == {"error"}
