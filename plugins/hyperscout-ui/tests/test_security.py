"""Host check, token off loopback, CSRF and same-origin POSTs, logs served only from inside the store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hyperscout.store import Store
from hyperscout_ui.app import create_app
from hyperscout_ui.security import COOKIE
from hyperscout_ui.synth import make_study


@pytest.fixture
def study(tmp_path: Path) -> Path:
    store = make_study(tmp_path / "store", "s", 3)
    jobs = store.load_jobs("s", with_metrics=False)
    inside = tmp_path / "store" / "jobs" / "s" / jobs[0].id
    inside.mkdir(parents=True)
    (inside / "stdout.log").write_text("hello from the job\n")
    jobs[0].stdout_path = str(inside / "stdout.log")
    jobs[1].stdout_path = "/etc/hostname"  # a row pointing outside the store is never served
    jobs[2].stdout_path = str(tmp_path / "store" / "jobs" / ".." / ".." / "secret.txt")
    (tmp_path / "secret.txt").write_text("secret")
    for j in jobs:
        store.save_job(j)
    store.close()
    return tmp_path / "store"


def client(store: Path, **kw: object) -> TestClient:
    return TestClient(create_app(store, **kw), base_url="http://127.0.0.1")


def csrf_of(c: TestClient) -> str:
    return re.search(r'data-csrf="([^"]+)"', c.get("/").text).group(1)


def test_loopback_only_serves_local_host_names(study: Path) -> None:
    with client(study) as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"host": "localhost:8642"}).status_code == 200
        assert c.get("/", headers={"host": "evil.example:8642"}).status_code == 400  # DNS rebinding


def test_token_is_required_off_loopback(study: Path) -> None:
    with client(study, token="t0ken", loopback_only=False) as c:
        r = c.get("/api/studies")
        assert r.status_code == 403 and "token" in r.text
        assert c.get("/api/studies", headers={"host": "203.0.113.7:8642"}).status_code == 403
        assert c.get("/api/studies?token=wrong").status_code == 403
        r = c.get("/?token=t0ken", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
        assert c.get("/api/studies", cookies={COOKIE: "t0ken"}).status_code == 200
        assert c.get("/api/studies", headers={"Authorization": "token t0ken"}).status_code == 200


def test_posts_need_the_csrf_token_and_this_origin(study: Path) -> None:
    with client(study) as c:
        token = csrf_of(c)
        assert c.post("/action/clear", data={}).status_code == 403
        assert c.post("/action/clear", data={"csrf": "nope"}).status_code == 403
        r = c.post("/action/clear", data={"csrf": token}, headers={"origin": "http://127.0.0.1:9999"})
        assert r.status_code == 403  # another port is another origin
        r = c.post("/action/clear", data={"csrf": token}, headers={"sec-fetch-site": "same-site"})
        assert r.status_code == 403
        r = c.post("/action/clear", data={"csrf": token}, headers={"origin": "http://127.0.0.1"}, follow_redirects=False)
        assert r.status_code == 303
        assert c.post("/launch", data={"do": "validate"}).status_code == 403


def test_logs_are_served_only_from_inside_the_store(study: Path) -> None:
    jobs = Store(study, readonly=True).load_jobs("s", with_metrics=False)
    with client(study) as c:
        assert c.get(f"/job/{jobs[0].id}/log/stdout").text == "hello from the job\n"
        for url in (f"/job/{jobs[1].id}/log/stdout", f"/job/{jobs[2].id}/log/stdout", f"/job/{jobs[0].id}/log/passwd",
                    "/job/..%2F..%2F..%2Fetc%2Fpasswd/log/stdout", "/job/x/log/..%2F..%2Fetc%2Fpasswd",
                    "/static/..%2Fapp.py", "/static/%2Fetc%2Fpasswd", "/api/study/log?name=../../../etc/passwd"):
            r = c.get(url)
            assert r.status_code == 404, url
            assert "root:" not in r.text and "secret" not in r.text
        data = c.get(f"/api/job/{jobs[1].id}").json()
        assert data["logs"]["stdout"]["available"] is False and data["logs"]["stdout"]["text"] == ""


def test_security_headers_and_local_plotly(study: Path) -> None:
    with client(study) as c:
        r = c.get("/study/s")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "cdn" not in r.text.lower() and "https://" not in r.text
        js = c.get(re.search(r'data-plotly="([^"]+)"', r.text).group(1))
        assert js.status_code == 200 and js.headers["content-encoding"] == "gzip" and len(js.content) > 3_000_000
