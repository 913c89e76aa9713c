"""Identity and access: credentials, tokens, keys, roles and tenant isolation."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
import redis
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from aia_api.identity.store import IdentityStore
from aia_workers.db.session import make_engine, make_sessionmaker
from aia_workers.settings import Settings
from tests.support import TEST_PASSWORD, Stack, sse_events, submit, wait_status

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
SLEEP = {"type": "diagnostics.sleep", "payload": {"seconds": 0}}


def _user(stack: Stack, role: str = "operator", tenant: str = "default") -> tuple[str, str]:
    return stack.create_user(role, tenant), TEST_PASSWORD


def _login(stack: Stack, username: str, password: str) -> dict:
    response = httpx.post(
        f"{stack.api_url}/v1/auth/token", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:aia:problem:unauthenticated"


def test_every_route_but_health_needs_credentials(redis_stack: Stack) -> None:
    base = redis_stack.api_url
    assert httpx.get(f"{base}/health").status_code == 200
    for method, path in [
        ("GET", "/v1/tasks"),
        ("POST", "/v1/tasks"),
        ("GET", "/status"),
        ("GET", "/metrics"),
        ("GET", "/v1/keys"),
        ("GET", "/v1/tasks/x/events"),
    ]:
        _assert_401(httpx.request(method, f"{base}{path}"))
    _assert_401(httpx.get(f"{base}/v1/tasks", headers={"Authorization": "Basic abc"}))
    _assert_401(httpx.get(f"{base}/v1/tasks", headers={"Authorization": "Bearer aia_nope"}))


def test_api_keys_work_as_bearer_or_x_api_key(redis_stack: Stack) -> None:
    key = redis_stack.create_key("operator")
    base = redis_stack.api_url
    assert httpx.post(f"{base}/v1/tasks", json=SLEEP, headers=_bearer(key)).status_code == 202
    assert httpx.post(f"{base}/v1/tasks", json=SLEEP, headers={"X-API-Key": key}).status_code == 202


def test_login_refresh_rotation_and_reuse_detection(redis_stack: Stack) -> None:
    username, password = _user(redis_stack)
    tokens = _login(redis_stack, username, password)
    assert tokens["token_type"] == "Bearer"
    base = redis_stack.api_url
    assert httpx.get(f"{base}/v1/tasks", headers=_bearer(tokens["access_token"])).status_code == 200
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert {"sub", "tenant", "roles", "iat", "exp", "jti", "iss", "aud"} <= set(claims)
    assert claims["roles"] == ["operator"]

    first = tokens["refresh_token"]
    rotated = httpx.post(f"{base}/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first
    # The spent token again: theft is assumed and the whole family dies.
    reuse = httpx.post(f"{base}/v1/auth/refresh", json={"refresh_token": first})
    _assert_401(reuse)
    assert "already used" in reuse.json()["detail"]
    _assert_401(httpx.post(f"{base}/v1/auth/refresh", json={"refresh_token": second}))


def test_logout_revokes_the_refresh_token(redis_stack: Stack) -> None:
    username, password = _user(redis_stack)
    tokens = _login(redis_stack, username, password)
    base = redis_stack.api_url
    out = httpx.post(f"{base}/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    _assert_401(
        httpx.post(f"{base}/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    )


def test_wrong_password_and_unknown_user_look_the_same(redis_stack: Stack) -> None:
    username, _ = _user(redis_stack)
    base = redis_stack.api_url
    wrong = httpx.post(f"{base}/v1/auth/token", json={"username": username, "password": "x" * 12})
    unknown = httpx.post(f"{base}/v1/auth/token", json={"username": "nobody", "password": "x" * 12})
    _assert_401(wrong)
    _assert_401(unknown)
    assert wrong.json()["detail"] == unknown.json()["detail"]
    bad = httpx.post(f"{base}/v1/auth/token", json={"username": username})
    assert bad.status_code == 422


def _forge(stack: Stack, **overrides: object) -> str:
    username, password = _user(stack)
    real = jwt.decode(
        _login(stack, username, password)["access_token"], options={"verify_signature": False}
    )
    claims = {**real, **{k: v for k, v in overrides.items() if not k.startswith("_")}}
    key = str(overrides.get("_key", stack.env["AIA_SECRET_KEY"]))
    algorithm = str(overrides.get("_alg", "HS256"))
    if algorithm == "none":
        return jwt.encode(claims, None, algorithm="none")
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.mark.parametrize(
    "overrides",
    [
        {"_alg": "none"},
        {"_alg": "HS512"},
        {"_key": "not-the-secret-" * 4},
        {"exp": int(time.time()) - 10},
        {"aud": "someone-else"},
        {"iss": "evil"},
    ],
    ids=["alg-none", "wrong-alg", "bad-signature", "expired", "wrong-aud", "wrong-iss"],
)
def test_forged_and_expired_tokens_are_refused(redis_stack: Stack, overrides: dict) -> None:
    token = _forge(redis_stack, **overrides)
    _assert_401(httpx.get(f"{redis_stack.api_url}/v1/tasks", headers=_bearer(token)))


def test_token_of_a_deleted_user_is_refused(redis_stack: Stack) -> None:
    username, password = _user(redis_stack)
    access = _login(redis_stack, username, password)["access_token"]
    base = redis_stack.api_url
    assert httpx.get(f"{base}/v1/tasks", headers=_bearer(access)).status_code == 200
    user_id = jwt.decode(access, options={"verify_signature": False})["sub"]
    settings = Settings(
        database_url=redis_stack.env["AIA_DATABASE_URL"],
        data_home=Path(redis_stack.env["AIA_DATA_HOME"]),
    )
    IdentityStore(make_sessionmaker(make_engine(settings)), refresh_ttl_seconds=60).delete_user(
        user_id
    )
    # What an admin tool does after deleting: tell every API process.
    redis.Redis.from_url(redis_stack.redis_url).publish(
        "aia:auth:invalidate", json.dumps({"m": f"user:{user_id}"})
    )
    time.sleep(0.2)
    _assert_401(httpx.get(f"{base}/v1/tasks", headers=_bearer(access)))


def test_key_revocation_takes_effect_at_once(redis_stack: Stack, redis_api: httpx.Client) -> None:
    created = redis_api.post("/v1/keys", json={"name": "short-lived", "role": "operator"})
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("aia_")
    listed = redis_api.get("/v1/keys").json()["items"]
    assert body["id"] in [k["id"] for k in listed]
    assert all("key" not in k for k in listed)  # shown once, never again
    base = redis_stack.api_url
    assert httpx.get(f"{base}/v1/tasks", headers=_bearer(body["key"])).status_code == 200
    assert redis_api.delete(f"/v1/keys/{body['id']}").status_code == 204
    _assert_401(httpx.get(f"{base}/v1/tasks", headers=_bearer(body["key"])))
    assert redis_api.delete(f"/v1/keys/{uuid.uuid4()}").status_code == 404


def test_roles_inherit_and_permissions_are_enforced(redis_stack: Stack) -> None:
    base = redis_stack.api_url
    viewer, operator = redis_stack.create_key("viewer"), redis_stack.create_key("operator")
    with httpx.Client(base_url=base, headers=_bearer(viewer)) as v:
        assert v.get("/v1/tasks").status_code == 200
        assert v.get("/status").status_code in (200, 503)
        denied = v.post("/v1/tasks", json=SLEEP)
        assert denied.status_code == 403
        assert denied.headers["content-type"] == PROBLEM
        assert denied.json()["permission"] == "tasks:submit"
    with httpx.Client(base_url=base, headers=_bearer(operator)) as o:
        task = o.post(
            "/v1/tasks", json={"type": "diagnostics.sleep", "payload": {"seconds": 5}}
        ).json()
        assert o.get(f"/v1/tasks/{task['id']}").status_code == 200  # read, inherited
        assert o.post(f"/v1/tasks/{task['id']}/cancel").status_code == 202
        assert o.get("/v1/keys").status_code == 403
        assert o.post("/v1/keys", json={"name": "x"}).status_code == 403
    with httpx.Client(base_url=base, headers=_bearer(viewer)) as v:
        assert v.post(f"/v1/tasks/{task['id']}/cancel").status_code == 403


def test_tenants_never_see_each_other(redis_stack: Stack, redis_api: httpx.Client) -> None:
    mine = submit(redis_api, {"seconds": 0})
    wait_status(redis_api, mine["id"], {"succeeded"})
    other_key = redis_stack.create_key("admin", tenant=f"other-{uuid.uuid4().hex[:6]}")
    base = redis_stack.api_url
    with httpx.Client(base_url=base, headers=_bearer(other_key), timeout=10) as other:
        assert other.get(f"/v1/tasks/{mine['id']}").status_code == 404
        assert other.get(f"/v1/tasks/{mine['id']}/events").status_code == 404
        assert other.post(f"/v1/tasks/{mine['id']}/cancel").status_code == 404
        listed = other.get("/v1/tasks", params={"limit": 200}).json()["items"]
        assert mine["id"] not in [t["id"] for t in listed]
        theirs = submit(other, {"seconds": 0})
        events = list(sse_events(other, theirs["links"]["events"]))
        assert events[-1]["event"] == "succeeded"
        their_keys = {k["id"] for k in other.get("/v1/keys").json()["items"]}
    our_keys = {k["id"] for k in redis_api.get("/v1/keys").json()["items"]}
    assert len(their_keys) == 1
    assert not their_keys & our_keys
    assert redis_api.get(f"/v1/tasks/{theirs['id']}").status_code == 404
    ws_url = base.replace("http://", "ws://") + "/v1/ws"
    with connect(ws_url, additional_headers=_bearer(other_key), open_timeout=10) as ws:
        ws.send(json.dumps({"action": "subscribe", "task_id": mine["id"]}))
        answer = json.loads(ws.recv(timeout=10))
        assert answer["status"] == 404


def test_websocket_needs_credentials(redis_stack: Stack) -> None:
    ws_url = redis_stack.api_url.replace("http://", "ws://") + "/v1/ws"
    with pytest.raises(InvalidStatus):
        connect(ws_url, open_timeout=10)
    # Browsers cannot set headers: a single-use stream ticket stands in for them.
    ticket = httpx.post(
        f"{redis_stack.api_url}/v1/streams/tickets", headers=_bearer(redis_stack.api_key)
    ).json()["ticket"]
    with connect(f"{ws_url}?ticket={ticket}", open_timeout=10) as ws:
        ws.send(json.dumps({"action": "subscribe", "task_id": "nope"}))
        assert json.loads(ws.recv(timeout=10))["status"] == 404


def test_the_api_refuses_to_start_with_a_weak_secret(redis_stack: Stack) -> None:
    env = {**redis_stack.env, "AIA_SECRET_KEY": "changeme"}
    aia = str(Path(sys.executable).parent / "aia")
    done = subprocess.run(
        [aia, "api", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "AIA_SECRET_KEY" in done.stderr


def test_metrics_take_the_scrape_token(redis_stack: Stack) -> None:
    token = "scrape-" + uuid.uuid4().hex
    proc, url = redis_stack.start_api(env={"AIA_METRICS_TOKEN": token})
    try:
        assert httpx.get(f"{url}/metrics", headers=_bearer(token)).status_code == 200
        _assert_401(httpx.get(f"{url}/metrics", headers=_bearer("wrong")))
        ok = httpx.get(f"{url}/metrics", headers=_bearer(redis_stack.api_key))
        assert ok.status_code == 200
    finally:
        proc.stop()


def test_flower_refuses_to_run_open_outside_dev_mode(redis_stack: Stack) -> None:
    env = {k: v for k, v in redis_stack.env.items() if k != "AIA_FLOWER_BASIC_AUTH"}
    aia = str(Path(sys.executable).parent / "aia")
    done = subprocess.run(
        [aia, "flower", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "AIA_FLOWER_BASIC_AUTH" in done.stderr


def test_people_manage_their_own_keys_up_to_their_role(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    username, password = _user(redis_stack, role="operator")
    access = _login(redis_stack, username, password)["access_token"]
    base = redis_stack.api_url
    with httpx.Client(base_url=base, headers=_bearer(access)) as me:
        assert me.post("/v1/keys", json={"name": "too much", "role": "admin"}).status_code == 403
        mine = me.post("/v1/keys", json={"name": "my ci", "role": "operator"})
        assert mine.status_code == 201
        listed = [k["id"] for k in me.get("/v1/keys").json()["items"]]
        assert listed == [mine.json()["id"]]  # only their own
        admin_keys = [k["id"] for k in redis_api.get("/v1/keys").json()["items"]]
        assert mine.json()["id"] in admin_keys  # the admin sees every key
        other = next(k for k in admin_keys if k != mine.json()["id"])
        assert me.delete(f"/v1/keys/{other}").status_code == 404
        assert me.delete(f"/v1/keys/{mine.json()['id']}").status_code == 204
    # A key without keys:manage cannot manage keys at all.
    operator_key = redis_stack.create_key("operator")
    denied = httpx.get(f"{base}/v1/keys", headers=_bearer(operator_key))
    assert denied.status_code == 403


def test_a_role_change_takes_effect_at_once_and_is_audited(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    username, password = _user(redis_stack, role="operator")
    access = _login(redis_stack, username, password)["access_token"]
    base = redis_stack.api_url
    assert httpx.post(f"{base}/v1/tasks", json=SLEEP, headers=_bearer(access)).status_code == 202
    redis_stack.aia("users", "set-role", "--username", username, "--role", "viewer")
    time.sleep(0.2)
    # The same, unexpired token: the role is read from the account.
    refused = httpx.post(f"{base}/v1/tasks", json=SLEEP, headers=_bearer(access))
    assert refused.status_code == 403
    events = redis_api.get("/v1/audit", params={"action": "role.change"}).json()["items"]
    assert any(
        e["detail"]["username"] == username and e["detail"]["to"] == "viewer" for e in events
    )
