"""Uploading datasets: CSV and JSON rows in, schema out, bad data named."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from aia_workers.ml.artifacts import IntegrityError, LocalArtifactStore
from tests.support import Stack

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
IRIS_LIKE = b"sepal,petal,species,measured_on\n5.1,1.4,setosa,2024-01-01\n" + b"".join(
    f"{4 + i % 3}.{i % 10},{1 + i % 5}.{i % 7},{['setosa', 'versicolor', 'virginica'][i % 3]},"
    f"2024-02-{1 + i % 28:02d}\n".encode()
    for i in range(120)
)


def test_csv_upload_returns_its_schema(redis_stack: Stack, redis_api: httpx.Client) -> None:
    response = redis_api.post(
        "/v1/ml/datasets",
        params={"name": "iris-like"},
        content=IRIS_LIKE,
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/ml/datasets/{body['id']}"
    assert body["rows"] == 121
    assert body["sha256"] == hashlib.sha256(IRIS_LIKE).hexdigest()
    kinds = {c["name"]: c["kind"] for c in body["columns"]}
    assert kinds == {
        "sepal": "numeric",
        "petal": "numeric",
        "species": "categorical",
        "measured_on": "datetime",
    }
    assert redis_api.get(body["links"]["self"]).json() == body
    stored = Path(redis_stack.env["AIA_DATA_HOME"]) / "artifacts" / "default" / "datasets"
    assert (stored / f"{body['id']}.csv").read_bytes() == IRIS_LIKE
    listed = redis_api.get("/v1/ml/datasets", params={"limit": 200}).json()["items"]
    assert body["id"] in [d["id"] for d in listed]


def test_json_rows_upload(redis_api: httpx.Client) -> None:
    rows = [{"text": f"review {i}", "label": i % 2 == 0, "stars": i % 5} for i in range(30)]
    response = redis_api.post("/v1/ml/datasets", json={"name": "reviews", "rows": rows})
    assert response.status_code == 201, response.text
    kinds = {c["name"]: c["kind"] for c in response.json()["columns"]}
    assert kinds["label"] == "boolean"
    assert kinds["stars"] == "numeric"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "detail"),
    [
        (b"", "text/csv", 422, "empty"),
        (b"a,b\n1,2\n3,4,5\n", "text/csv", 422, "row 3"),
        (b"a,a\n1,2\n", "text/csv", 422, "appears twice"),
        (b'{"name": "x", "rows": [{"a": 1}, {"b": 2}]}', "application/json", 422, "row 2"),
        (b'{"name": "x", "rows": []}', "application/json", 422, "rows"),
        (b"a,b\n1,2\n", "application/pdf", 415, "text/csv"),
        (b"{nope", "application/json", 400, "JSON"),
    ],
)
def test_bad_data_is_a_clear_problem(
    redis_api: httpx.Client, content: bytes, content_type: str, status: int, detail: str
) -> None:
    response = redis_api.post(
        "/v1/ml/datasets", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert detail in problem["detail"] or any(detail in str(e) for e in problem.get("errors", []))


def test_the_row_and_column_are_named(redis_api: httpx.Client) -> None:
    response = redis_api.post(
        "/v1/ml/datasets", json={"name": "x", "rows": [{"a": 1, "b": 2}, {"a": 1}]}
    )
    problem = response.json()
    assert problem["row"] == 2
    assert problem["column"] == "b"
    assert problem["errors"][0]["pointer"] == "/body/row/2/b"


def test_oversized_upload_is_413(redis_stack: Stack) -> None:
    proc, url = redis_stack.start_api(env={"AIA_MAX_DATASET_BYTES": "4096"})
    try:
        response = httpx.post(
            f"{url}/v1/ml/datasets",
            content=b"a,b\n" + b"1,2\n" * 2000,
            headers={"content-type": "text/csv", "Authorization": f"Bearer {redis_stack.api_key}"},
        )
        assert response.status_code == 413
        assert response.json()["max_bytes"] == 4096
    finally:
        proc.stop()


def test_datasets_are_tenant_scoped_and_need_permissions(
    redis_stack: Stack, redis_api: httpx.Client
) -> None:
    mine = redis_api.post(
        "/v1/ml/datasets",
        params={"name": "mine"},
        content=b"a\n1\n",
        headers={"content-type": "text/csv"},
    ).json()
    other = redis_stack.create_key("admin", tenant=f"other-{uuid.uuid4().hex[:6]}")
    base = redis_stack.api_url
    auth = {"Authorization": f"Bearer {other}"}
    assert httpx.get(f"{base}/v1/ml/datasets/{mine['id']}", headers=auth).status_code == 404
    assert httpx.get(f"{base}/v1/ml/datasets", headers=auth).json()["items"] == []
    viewer = {
        "Authorization": f"Bearer {redis_stack.create_key('viewer')}",
        "content-type": "text/csv",
    }
    assert (
        httpx.post(f"{base}/v1/ml/datasets", content=b"a\n1\n", headers=viewer).status_code == 403
    )


def test_a_tampered_artifact_is_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put("t/datasets/x.csv", b"a\n1\n")
    assert store.get("t/datasets/x.csv", digest) == b"a\n1\n"
    (tmp_path / "t" / "datasets" / "x.csv").write_bytes(b"a\n2\n")
    with pytest.raises(IntegrityError, match="changed outside AIA"):
        store.get("t/datasets/x.csv", digest)
    with pytest.raises(ValueError, match="leaves the store"):
        store.put("../escape.csv", b"x")


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _tiny_cells(rows: int) -> bytes:
    # Two-character cells: the case where Python objects dwarf the file.
    return b"a,b,c,d,e,f,g,h,i,j\n" + b"".join(
        ",".join(str(10 + (i + c) % 89) for c in range(10)).encode() + b"\n" for i in range(rows)
    )


def test_a_large_upload_does_not_grow_the_api_process(redis_stack: Stack) -> None:
    proc, url = redis_stack.start_api()
    auth = {"Authorization": f"Bearer {redis_stack.api_key}"}
    try:
        csv_body = _tiny_cells(600_000)
        json_body = orjson.dumps(
            {
                "name": "json",
                "rows": [dict.fromkeys("abcdefghij", 10 + i % 89) for i in range(300_000)],
            }
        )
        before = _peak_rss_mb(proc.popen.pid)
        for body, kind in ((csv_body, "text/csv"), (json_body, "application/json")):
            response = httpx.post(
                f"{url}/v1/ml/datasets",
                params={"name": "large"},
                content=body,
                headers={**auth, "content-type": kind},
                timeout=120,
            )
            assert response.status_code == 201, response.text
            assert response.json()["rows"] in (600_000, 300_000)
        growth = _peak_rss_mb(proc.popen.pid) - before
        # Read into Python objects, these 18 MB and 28 MB bodies took 300-500 MB.
        assert growth < 64, f"the API grew by {growth:.0f} MB"
    finally:
        proc.stop()


def test_uploads_stop_at_the_tenant_storage_quota(redis_stack: Stack) -> None:
    proc, url = redis_stack.start_api(env={"AIA_TENANT_STORAGE_BYTES": "4096"})
    tenant = f"quota-{uuid.uuid4().hex[:6]}"
    headers = {
        "Authorization": f"Bearer {redis_stack.create_key('operator', tenant=tenant)}",
        "content-type": "text/csv",
    }
    try:
        first = httpx.post(f"{url}/v1/ml/datasets", content=b"a\n" + b"1\n" * 1500, headers=headers)
        assert first.status_code == 201, first.text
        over = httpx.post(f"{url}/v1/ml/datasets", content=b"a\n" + b"2\n" * 600, headers=headers)
        assert over.status_code == 413, over.text
        assert over.headers["content-type"] == PROBLEM
        problem = over.json()
        assert problem["type"].endswith("storage-quota-exceeded")
        assert (problem["used_bytes"], problem["quota_bytes"]) == (3002, 4096)
        listed = httpx.get(f"{url}/v1/ml/datasets", headers=headers).json()["items"]
        assert [d["id"] for d in listed] == [first.json()["id"]]
        # What fits still goes in.
        small = httpx.post(f"{url}/v1/ml/datasets", content=b"a\n1\n", headers=headers)
        assert small.status_code == 201, small.text
    finally:
        proc.stop()
