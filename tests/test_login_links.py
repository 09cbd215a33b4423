"""Signing a phone in by QR code / short link: the CLI as a process, the admin API, the page in a
real browser at 390×844, expiry, revocation, the reuse window, and the code in no log line."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zxingcpp
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, text

from api.app import create_app
from api.auth import Role, create_token, resolve_token
from api.deps import TOKEN_COOKIE
from api.login_links import REUSE_MINUTES
from tests.conftest import bearer

WANGGE = str(Path(sys.executable).with_name("wangge"))
UVICORN = str(Path(sys.executable).with_name("uvicorn"))
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
GRID = "320571005001001"
PUBLIC = "https://wangge.example.cn"
CODE = re.compile(r"/m/login#([A-Za-z0-9_-]{24})$")
HOSTILE = '<img src=x onerror="document.title=1">张三&amp;'


def mounted(app: FastAPI) -> FastAPI:
    """The app as api/app.py builds it (it mounts the sign-in routes itself)."""
    return app


def served_app() -> FastAPI:
    """For `uvicorn --factory`: the app as `wangge serve` runs it, settings from the environment."""
    return mounted(create_app())


@pytest.fixture
def app_client(settings) -> Iterator[TestClient]:
    with TestClient(mounted(create_app(settings.model_copy(update={"public_url": PUBLIC})))) as c:
        yield c


def _decode(png: bytes) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def _code(url: str) -> str:
    match = CODE.search(url)
    assert match, url
    return match.group(1)


def _staff(engine: Engine) -> tuple[int, str]:
    with engine.connect() as connection:
        row = connection.execute(text("SELECT id, name FROM staff ORDER BY id LIMIT 1")).one()
    return int(row.id), row.name


def _new_link(client: TestClient, admin: str, **extra) -> dict:
    body = {"name": "网格员手机", "role": "field_staff", "grid_codes": [GRID], "qr": True, **extra}
    response = client.post("/api/v1/tokens", json=body, headers=bearer(admin))
    assert response.status_code == 201, response.text
    return response.json()


# --- the command -------------------------------------------------------------------------------


def test_cli_prints_the_link_and_a_terminal_qr_and_writes_a_png_that_decodes(
    database_url, engine, tmp_path
):
    staff_id, _ = _staff(engine)
    env = {**os.environ, "WANGGE_DATABASE_URL": database_url, "WANGGE_PUBLIC_URL": PUBLIC}
    png = tmp_path / "qr.png"
    args = ["token", "create", "--role", "field_staff", "--grid", GRID, "--staff", str(staff_id)]
    done = subprocess.run(
        [WANGGE, *args, "--name", "李四", "--qr", "--link-days", "3", "--qr-png", str(png)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    secret = next(line for line in lines if line.startswith("wg_"))
    url = next(line for line in lines if line.startswith(PUBLIC))
    code = _code(url)
    assert sum(1 for line in lines if "▀" in line or "▄" in line) >= 12  # the QR in half blocks
    assert _decode(png.read_bytes()) == [url]
    with engine.connect() as connection:
        token = resolve_token(connection, secret)
        assert token is not None and token.staff_id == staff_id
        link = connection.execute(
            text("SELECT token_id, code_sha256, expires_at - now() AS left FROM login_link")
        ).one()
    assert link.token_id == token.token_id
    assert link.code_sha256 == hashlib.sha256(code.encode()).hexdigest()
    assert timedelta(days=2, hours=23) < link.left <= timedelta(days=3)

    # Without --qr-png the PNG lands in the working directory, named after the token.
    again = subprocess.run(
        [WANGGE, *args, "--qr"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert again.returncode == 0, again.stderr
    token_id = re.search(r"令牌 #(\d+)", again.stdout).group(1)
    written = tmp_path / f"wangge-login-{token_id}.png"
    assert _decode(written.read_bytes())[0].startswith(PUBLIC + "/m/login#")

    too_long = subprocess.run(
        [WANGGE, *args, "--qr", "--link-days", "31"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert too_long.returncode == 2
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM login_link")).scalar_one() == 2


# --- the admin API -----------------------------------------------------------------------------


def test_api_creates_a_token_with_its_link_and_links_for_existing_tokens(
    app_client, tokens, engine
):
    staff_id, _ = _staff(engine)
    created = _new_link(app_client, tokens["admin"], staff_id=staff_id, link_days=5)
    assert _decode(base64.b64decode(created["qr_png"])) == [created["login_url"]]
    assert created["login_url"].startswith(PUBLIC + "/m/login#")
    expires = datetime.fromisoformat(created["link_expires_at"])
    assert timedelta(days=4, hours=23) < expires - datetime.now(UTC) <= timedelta(days=5)
    plain = app_client.post(
        "/api/v1/tokens", json={"name": "x", "role": "viewer"}, headers=bearer(tokens["admin"])
    ).json()
    assert "login_url" not in plain and "qr_png" not in plain

    token_id = created["id"]
    more = app_client.post(
        f"/api/v1/tokens/{token_id}/links", json={"link_days": 1}, headers=bearer(tokens["admin"])
    )
    assert more.status_code == 201
    assert _decode(base64.b64decode(more.json()["qr_png"])) == [more.json()["login_url"]]
    assert _code(more.json()["login_url"]) != _code(created["login_url"])
    default = app_client.post(f"/api/v1/tokens/{token_id}/links", headers=bearer(tokens["admin"]))
    assert default.status_code == 201
    listed = app_client.get(f"/api/v1/tokens/{token_id}/links", headers=bearer(tokens["admin"]))
    assert [link["state"] for link in listed.json()] == ["active", "active", "active"]
    assert all("code" not in link and "login_url" not in link for link in listed.json())

    revoked = app_client.delete(
        f"/api/v1/login-links/{more.json()['id']}", headers=bearer(tokens["admin"])
    )
    assert revoked.status_code == 204
    again = app_client.delete(
        f"/api/v1/login-links/{more.json()['id']}", headers=bearer(tokens["admin"])
    )
    assert again.status_code == 404 and again.json()["error"]["where"] == "path.link_id"
    listed = app_client.get(f"/api/v1/tokens/{token_id}/links", headers=bearer(tokens["admin"]))
    assert [link["state"] for link in listed.json()] == ["active", "revoked", "active"]

    # Bad input answers 4xx naming where; a revoked token gets no new link; its links die with it.
    for days in (0, 31, "x"):
        bad = app_client.post(
            f"/api/v1/tokens/{token_id}/links",
            json={"link_days": days},
            headers=bearer(tokens["admin"]),
        )
        assert bad.status_code == 422 and bad.json()["error"]["where"] == "body.link_days"
    bad = app_client.post(
        "/api/v1/tokens",
        json={"name": "x", "role": "viewer", "qr": True, "link_days": 40},
        headers=bearer(tokens["admin"]),
    )
    assert bad.status_code == 422 and bad.json()["error"]["where"] == "body.link_days"
    for method in ("post", "get"):
        missing = app_client.request(
            method, "/api/v1/tokens/999999/links", headers=bearer(tokens["admin"])
        )
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "token_not_found"
    assert (
        app_client.delete(f"/api/v1/tokens/{token_id}", headers=bearer(tokens["admin"])).status_code
        == 204
    )
    refused = app_client.post(f"/api/v1/tokens/{token_id}/links", headers=bearer(tokens["admin"]))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "token_not_valid"
    listed = app_client.get(f"/api/v1/tokens/{token_id}/links", headers=bearer(tokens["admin"]))
    assert [link["state"] for link in listed.json()] == [
        "token_revoked",
        "revoked",
        "token_revoked",
    ]


def test_only_admins_manage_links(app_client, tokens):
    created = _new_link(app_client, tokens["admin"])
    token_id = created["id"]
    routes = [
        ("post", f"/api/v1/tokens/{token_id}/links"),
        ("get", f"/api/v1/tokens/{token_id}/links"),
        ("delete", "/api/v1/login-links/1"),
    ]
    answers = []
    for role in Role:
        if role == Role.admin:
            continue
        for method, path in routes:
            response = app_client.request(method, path, headers=bearer(tokens[role.value]))
            answers.append((response.status_code, response.json()["error"]["code"]))
    assert answers == [(403, "insufficient_role")] * 18
    for headers, code in (({}, "token_required"), (bearer("wg_bogus"), "invalid_token")):
        for method, path in routes:
            response = app_client.request(method, path, headers=headers)
            assert (response.status_code, response.json()["error"]["code"]) == (401, code)


# --- signing in over HTTP ----------------------------------------------------------------------


def _sign_in(client: TestClient, code: str, **headers: str):
    return client.post("/m/login", data={"code": code}, headers=headers, follow_redirects=False)


def test_the_get_never_signs_in_and_the_post_hands_the_token_to_the_phone(
    app_client, settings, tokens, engine
):
    staff_id, staff_name = _staff(engine)
    created = _new_link(app_client, tokens["admin"], staff_id=staff_id)
    code = _code(created["login_url"])

    shown = app_client.get("/m/login")
    assert shown.status_code == 200 and "set-cookie" not in shown.headers
    assert "nonce-" in shown.headers["content-security-policy"]
    preview = app_client.post("/m/login/preview", json={"code": code})
    assert preview.status_code == 200 and "set-cookie" not in preview.headers
    assert preview.json()["label"] == f"登录为 {staff_name}（网格员，网格 {GRID}）"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT used_at FROM login_link")).scalar_one() is None

    crossed = _sign_in(app_client, code, origin="https://evil.example")
    assert crossed.status_code == 403 and crossed.json()["error"]["code"] == "cross_site_login"

    signed = _sign_in(app_client, code)
    assert signed.status_code == 303 and signed.headers["location"] == "/m/"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}=wg_")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    secret = signed.cookies[TOKEN_COOKIE]
    with engine.connect() as connection:
        phone = resolve_token(connection, secret)
        assert phone is not None and (phone.token_id, phone.staff_id) == (created["id"], staff_id)
        assert resolve_token(connection, created["token"]) is None  # the phone holds it now
    # The cookie reads like the token's own secret did (same token id, same grid).
    app_client.cookies.clear()
    app_client.cookies.set(TOKEN_COOKIE, secret)
    assert app_client.get(f"/api/v1/grids/{GRID}").status_code == 200
    app_client.cookies.clear()

    https = mounted(create_app(settings.model_copy(update={"public_url": PUBLIC})))
    with TestClient(https, base_url="https://testserver") as secure:
        other = _new_link(secure, tokens["admin"])
        signed = _sign_in(secure, _code(other["login_url"]))
        assert signed.status_code == 303 and "Secure" in signed.headers["set-cookie"]


def _page_error(response, status: int, words: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert words in response.text and "Traceback" not in response.text
    assert "set-cookie" not in response.headers


def test_reuse_window_expiry_and_revocation(app_client, tokens, engine):
    created = _new_link(app_client, tokens["admin"])
    code = _code(created["login_url"])
    first = _sign_in(app_client, code).cookies[TOKEN_COOKIE]
    second = _sign_in(app_client, code)  # the same phone again, within the window
    assert second.status_code == 303
    with engine.connect() as connection:
        assert resolve_token(connection, first) is None  # one holder at a time
        assert resolve_token(connection, second.cookies[TOKEN_COOKIE]) is not None
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE login_link SET used_at = now() - make_interval(mins => :m)"),
            {"m": REUSE_MINUTES + 1},
        )
    _page_error(_sign_in(app_client, code), 410, "已使用过")
    spent = app_client.post("/m/login/preview", json={"code": code})
    assert (spent.status_code, spent.json()["error"]["code"]) == (410, "login_link_spent")

    expiring = _code(_new_link(app_client, tokens["admin"])["login_url"])
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE login_link SET expires_at = now() - interval '1 second' WHERE used_at IS NULL"
            )
        )
    _page_error(_sign_in(app_client, expiring), 410, "已过期")

    revoked = _new_link(app_client, tokens["admin"])
    links = app_client.get(
        f"/api/v1/tokens/{revoked['id']}/links", headers=bearer(tokens["admin"])
    ).json()
    app_client.delete(f"/api/v1/login-links/{links[0]['id']}", headers=bearer(tokens["admin"]))
    _page_error(_sign_in(app_client, _code(revoked["login_url"])), 410, "已被吊销")

    dead = _new_link(app_client, tokens["admin"])
    app_client.delete(f"/api/v1/tokens/{dead['id']}", headers=bearer(tokens["admin"]))
    _page_error(_sign_in(app_client, _code(dead["login_url"])), 410, "令牌已被吊销")

    with engine.begin() as connection:
        expired_token = create_token(
            connection,
            name="过期",
            role=Role.viewer,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            actor="tests",
        )
    short = app_client.post(
        f"/api/v1/tokens/{expired_token.id}/links", headers=bearer(tokens["admin"])
    ).json()
    assert datetime.fromisoformat(short["link_expires_at"]) <= datetime.now(UTC) + timedelta(
        hours=1
    )
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE api_token SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": expired_token.id},
        )
    _page_error(_sign_in(app_client, _code(short["login_url"])), 410, "令牌已过期")

    for unknown in ("A" * 24, "", "x" * 5000, "../../etc/passwd"):
        _page_error(_sign_in(app_client, unknown), 404, "登录链接无效")
    missing = app_client.post("/m/login/preview", json={"code": "A" * 24})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "login_link_unknown")
    for body in ({}, {"code": ""}, {"code": "x" * 101}, {"code": 5}):
        bad = app_client.post("/m/login/preview", json=body)
        assert bad.status_code == 422 and bad.json()["error"]["where"].startswith("body")


# --- the page in a real browser, the server's own log --------------------------------------------


@pytest.fixture
def served(database_url, service_url, tmp_path) -> Iterator[tuple[str, Path]]:
    """`uvicorn` as a process (its access log on, as `wangge serve` runs it); its output file."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "WANGGE_DATABASE_URL": service_url,
        "WANGGE_OWNER_DATABASE_URL": database_url,
        "WANGGE_PUBLIC_URL": base,
        "WANGGE_WORKFLOW__SWEEP_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",  # every access log line in the file as it happens
    }
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [UVICORN, "tests.test_login_links:served_app", "--factory", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while "Application startup complete" not in log.read_text():
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            yield base, log
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        yield chromium
        chromium.close()


def test_phone_scans_confirms_and_is_signed_in_and_no_log_holds_the_code(
    browser, served, tokens, engine
):
    base, log = served
    with engine.begin() as connection:
        staff_id = connection.execute(
            text("INSERT INTO staff (name, phone) VALUES (:n, '13900000000') RETURNING id"),
            {"n": HOSTILE},
        ).scalar_one()
    import httpx

    admin = bearer(tokens["admin"])
    body = {"name": "hostile", "role": "field_staff", "grid_codes": [GRID], "staff_id": staff_id}
    created = httpx.post(f"{base}/api/v1/tokens", json={**body, "qr": True}, headers=admin)
    assert created.status_code == 201, created.text
    url = created.json()["login_url"]
    assert url.startswith(base + "/m/login#")
    code = _code(url)

    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url, wait_until="networkidle")
    button = page.locator("#wg-confirm")
    button.wait_for(state="visible")
    assert button.inner_text() == f"登录为 {HOSTILE}（网格员，网格 {GRID}）"
    assert page.locator("img").count() == 0 and page.title() != "1"  # text, not markup
    box = button.bounding_box()
    assert box is not None and box["height"] >= 48 and box["width"] >= 300  # a thumb's target
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert not [c for c in context.cookies() if c["name"] == TOKEN_COOKIE]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT used_at FROM login_link")).scalar_one() is None
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "m_login.png"))

    with page.expect_navigation(url=f"{base}/m/"):
        button.click()
    cookie = next(c for c in context.cookies() if c["name"] == TOKEN_COOKIE)
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)
    with engine.connect() as connection:
        phone = resolve_token(connection, cookie["value"])
    assert phone is not None and phone.token_id == created.json()["id"]
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: no script reads it
    assert errors == [] or all("404" in e for e in errors)  # /m/ may not exist yet

    # A link that can no longer be used says so on the page and offers no button.
    app_links = httpx.get(f"{base}/api/v1/tokens/{created.json()['id']}/links", headers=admin)
    httpx.delete(f"{base}/api/v1/login-links/{app_links.json()[0]['id']}", headers=admin)
    gone = context.new_page()
    gone.goto(url, wait_until="networkidle")
    gone.locator(".wg-m-bad").wait_for()
    assert "已被吊销" in gone.locator("#wg-status").inner_text()
    assert not gone.locator("#wg-confirm").is_visible()
    context.close()

    time.sleep(0.5)  # let the server flush its access log
    written = log.read_text()
    assert written.count('"GET /m/login HTTP/1.1" 200') == 2  # the log did record the visits
    assert '"POST /m/login HTTP/1.1" 303' in written
    assert code not in written
    with engine.connect() as connection:
        audit = connection.execute(text("SELECT string_agg(details::text, ' ') FROM audit_log"))
        assert code not in (audit.scalar_one() or "")
