"""Signing in and out: the session cookie's flags, a new session on sign-in, lockout and the per-address
limit, the CSRF token on the login form, and a disabled account's session ending at once."""

from __future__ import annotations

from dashboard.app import SERVICE
from tests.conftest import Org
from tests.dashboard.conftest import PASSWORD, Client, account, csrf_of, sign_in


async def post_login(client: Client, username: str, password: str, next_: str = "/") -> tuple[int, str, str]:
    token = await csrf_of(client, "/login")
    response = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": next_},
        allow_redirects=False,
    )
    return response.status, response.headers.get("Location", ""), await response.text()


async def test_sign_in_sets_an_encrypted_httponly_lax_cookie_and_goes_where_asked(
    client: Client, org: Org
) -> None:
    await account(client, org, "staff-a")
    token = await csrf_of(client, "/login")
    response = await client.post(
        "/login",
        data={"username": "staff-a", "password": PASSWORD, "csrf_token": token, "next": "/figures"},
        allow_redirects=False,
    )
    assert (response.status, response.headers["Location"]) == (302, "/figures")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=43200" in cookie
    assert "staff-a" not in cookie and "account" not in cookie  # encrypted
    page = await (await client.get("/")).text()
    assert "周丽" in page and "退出" in page


async def test_a_wrong_password_is_refused_in_chinese_and_next_cannot_leave_the_site(
    client: Client, org: Org
) -> None:
    await account(client, org, "staff-a")
    status, _, page = await post_login(client, "staff-a", "wrong password")
    assert status == 401 and "用户名或密码不对" in page
    status, location, _ = await post_login(client, "staff-a", PASSWORD, next_="//evil.example/x")
    assert (status, location) == (302, "/")


async def test_a_new_session_on_sign_in(client: Client, org: Org) -> None:
    """Session fixation: the anonymous session's CSRF token does not survive signing in."""
    before = await csrf_of(client, "/login")
    await sign_in(client, org, "staff-a")
    after = await csrf_of(client, "/")
    assert after != before


async def test_the_login_form_needs_its_csrf_token(client: Client, org: Org) -> None:
    await account(client, org, "staff-a")
    await client.get("/login")
    response = await client.post(
        "/login", data={"username": "staff-a", "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403


async def test_five_wrong_passwords_lock_the_account(client: Client, org: Org) -> None:
    await account(client, org, "staff-a")
    for _ in range(5):
        assert (await post_login(client, "staff-a", "wrong password"))[0] == 401
    status, _, page = await post_login(client, "staff-a", PASSWORD)
    assert status == 401 and "账号已暂时锁定" in page and "15 分钟" in page


async def test_more_than_ten_attempts_a_minute_from_one_address_get_a_429(client: Client, org: Org) -> None:
    for _ in range(10):
        assert (await post_login(client, "nobody", "wrong password"))[0] == 401
    status, _, page = await post_login(client, "nobody", "wrong password")
    assert status == 429 and "请等一分钟再试" in page


async def test_a_disabled_account_s_session_stops_working(client: Client, org: Org) -> None:
    await sign_in(client, org, "staff-a")
    assert (await client.get("/", allow_redirects=False)).status == 200
    await client.app[SERVICE].disable_account("staff-a")
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login")


async def test_logging_out_ends_the_session(client: Client, org: Org) -> None:
    await sign_in(client, org, "staff-a")
    token = await csrf_of(client, "/")
    response = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, "/login")
    assert (await client.get("/", allow_redirects=False)).status == 302
