"""The client side on tiny dashboards: single sign-on, guards, silent refresh, logout."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from auth.models import Account, RefreshToken
from auth_client.guards import current_user, page_user, require_page_role, require_role
from auth_client.sign_in import AuthClientConfig, DashboardAuth, StoredSession, install_auth
from auth_client.token_flow import hidden_inputs
from auth_client.verification import CurrentUser, TokenVerifier
from deploy.embedded import free_port
from tests.auth.support import Browser, bearer, dashboard_clients, running_provider
from tests.helpers import serve_app

Caller = Annotated[CurrentUser, Depends(current_user)]
Admin = Annotated[CurrentUser, Depends(require_role("admin"))]
Visitor = Annotated[CurrentUser, Depends(page_user)]
AdminVisitor = Annotated[CurrentUser, Depends(require_page_role("admin"))]


def tiny_dashboard(config: AuthClientConfig, verifier: TokenVerifier | None = None) -> FastAPI:
    app = FastAPI()
    install_auth(app, config, verifier)

    @app.get("/")
    def board(user: Visitor) -> HTMLResponse:
        return HTMLResponse(f"<h1>{config.client_id}</h1><p>Hello, {user.name}</p>")

    @app.get("/admin")
    def admin_page(user: AdminVisitor) -> HTMLResponse:
        return HTMLResponse(f"<h1>{config.client_id} admin</h1>")

    @app.get("/api/whoami")
    def whoami(user: Caller) -> dict:
        return user.__dict__

    @app.get("/api/admins-only")
    def admins_only(user: Admin) -> dict:
        return {"ok": True}

    return app


@pytest.fixture(scope="module")
def dashboards(provider, dashboard_ports):
    """Two dashboards registered at the provider: ``tasks`` and ``accounting``."""
    tasks, accounting = (tiny_dashboard(provider.dashboard_config(name, dashboard_ports[name]))
                         for name in ("tasks", "accounting"))
    with serve_app(tasks, port=dashboard_ports["tasks"]) as tasks_url, \
            serve_app(accounting, port=dashboard_ports["accounting"]) as accounting_url:
        yield {"tasks": tasks_url, "accounting": accounting_url}


@pytest.fixture
def browser():
    browser = Browser()
    yield browser
    browser.close()


def is_login_page(response: httpx.Response) -> bool:
    return response.status_code == 200 and 'name="password"' in response.text


def test_anonymous_callers_get_401_json_and_browsers_a_login_redirect(dashboards):
    api = httpx.get(f"{dashboards['tasks']}/api/whoami")
    page = httpx.get(f"{dashboards['tasks']}/admin?tab=all")

    assert api.status_code == 401 and api.json() == {"detail": "not authenticated"}
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2Fadmin%3Ftab%3Dall"


def test_login_redirects_to_the_provider_with_pkce_state_and_nonce(provider, dashboards):
    response = httpx.get(f"{dashboards['tasks']}/auth/login?next=/")

    location = urlsplit(response.headers["location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert response.status_code == 302
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{provider.url}/oauth/authorize")
    assert query["client_id"] == "tasks" and query["code_challenge_method"] == "S256"
    assert query["state"] and query["nonce"] and query["code_challenge"]
    assert query["redirect_uri"] == f"{dashboards['tasks']}/auth/callback"


def test_one_login_serves_every_dashboard(dashboards, make_login, browser):
    login = make_login("worker", name="Kesha Popugaev")

    login_page = browser.get(f"{dashboards['tasks']}/")
    assert is_login_page(login_page)
    tasks_page = browser.sign_in(login_page, login)
    accounting_page = browser.get(f"{dashboards['accounting']}/")

    assert tasks_page.status_code == 200 and "Hello, Kesha Popugaev" in tasks_page.text
    assert str(tasks_page.url) == f"{dashboards['tasks']}/"
    assert accounting_page.status_code == 200 and "<h1>accounting</h1>" in accounting_page.text
    whoami = browser.http.get(f"{dashboards['accounting']}/api/whoami").json()
    assert whoami == {"id": login.id, "email": login.email, "name": "Kesha Popugaev",
                      "role": "worker"}


def test_session_cookie_is_signed_httponly_and_lax(dashboards, make_login, browser):
    browser.sign_in(browser.get(f"{dashboards['tasks']}/"), make_login())

    cookie = next(c for c in browser.http.cookies.jar if c.name == "ates_tasks")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite").lower() == "lax"

    cookie.value = cookie.value[:-4] + "AAAA"
    assert browser.http.get(f"{dashboards['tasks']}/api/whoami").status_code == 401


def test_the_page_asked_for_is_shown_after_login(dashboards, admin, browser):
    page = browser.sign_in(browser.get(f"{dashboards['tasks']}/admin?tab=all"), admin)

    assert page.status_code == 200 and str(page.url) == f"{dashboards['tasks']}/admin?tab=all"


def test_roles_are_enforced_for_pages_and_apis(provider, dashboards, make_login, browser):
    worker = make_login("worker")
    browser.sign_in(browser.get(f"{dashboards['tasks']}/"), worker)

    page = browser.http.get(f"{dashboards['tasks']}/admin")
    api = browser.http.get(f"{dashboards['tasks']}/api/admins-only")
    with_token = httpx.get(f"{dashboards['tasks']}/api/admins-only",
                           headers=bearer(provider.token_for(worker)))

    assert page.status_code == api.status_code == with_token.status_code == 403
    assert "admin" in api.json()["detail"]


def test_bearer_tokens_work_without_a_session(provider, dashboards, admin):
    token = provider.token_for(admin)

    response = httpx.get(f"{dashboards['accounting']}/api/admins-only", headers=bearer(token))

    assert response.status_code == 200


def test_callback_refuses_a_foreign_state_or_an_error(dashboards, browser):
    browser.http.get(f"{dashboards['tasks']}/auth/login")

    forged = browser.http.get(f"{dashboards['tasks']}/auth/callback?code=abc&state=forged")
    refused = browser.http.get(f"{dashboards['tasks']}/auth/callback?error=access_denied")

    assert forged.status_code == refused.status_code == 400
    assert "ates_tasks=" not in forged.headers.get("set-cookie", "")


def is_confirmation_page(response: httpx.Response) -> bool:
    return response.status_code == 200 and "Sign out?" in response.text


def still_signed_in(browser: Browser, dashboards: dict[str, str]) -> bool:
    return all(browser.http.get(f"{url}/api/whoami").status_code == 200
               and not is_login_page(browser.get(f"{url}/")) for url in dashboards.values())


def test_a_sign_out_link_ends_no_session_before_confirmation(dashboards, make_login, browser):
    browser.sign_in(browser.get(f"{dashboards['tasks']}/"), make_login())
    browser.get(f"{dashboards['accounting']}/")

    page = browser.get(f"{dashboards['tasks']}/auth/logout")

    assert is_confirmation_page(page)
    assert still_signed_in(browser, dashboards)


def test_a_cross_site_sign_out_post_is_refused(dashboards, make_login, browser):
    browser.sign_in(browser.get(f"{dashboards['tasks']}/"), make_login())

    forged = browser.http.post(f"{dashboards['tasks']}/auth/logout",
                               headers={"Origin": "https://evil.example"})

    assert forged.status_code == 403
    assert "ates_tasks=" not in forged.headers.get("set-cookie", "")
    assert still_signed_in(browser, {"tasks": dashboards["tasks"]})


def test_confirming_without_the_form_token_ends_nothing(dashboards, make_login, browser):
    browser.sign_in(browser.get(f"{dashboards['tasks']}/"), make_login())
    page = browser.get(f"{dashboards['tasks']}/auth/logout")
    fields = hidden_inputs(page.text)
    del fields["csrf_token"]

    refused = browser.http.post(str(page.url.join("/oauth/logout")), data=fields)

    assert refused.status_code == 403
    assert still_signed_in(browser, {"tasks": dashboards["tasks"]})


def test_logout_ends_the_session_of_every_dashboard(provider, dashboards, make_login, browser):
    browser.sign_in(browser.get(f"{dashboards['tasks']}/"), make_login())
    assert browser.get(f"{dashboards['accounting']}/").status_code == 200

    confirmation = browser.follow(browser.http.post(f"{dashboards['tasks']}/auth/logout"))
    signed_out = browser.confirm(confirmation)
    frames = browser.frames(signed_out)

    assert is_confirmation_page(confirmation)
    assert signed_out.status_code == 200 and "You are signed out" in signed_out.text
    assert sorted(str(frame.url).split("/auth/")[0] for frame in frames) == sorted(
        dashboards.values())
    assert all(frame.status_code == 200 for frame in frames)
    for url in dashboards.values():
        assert is_login_page(browser.get(f"{url}/")), url
        assert browser.http.get(f"{url}/api/whoami").status_code == 401


def test_logout_revokes_refresh_tokens_even_if_frames_never_load(provider, dashboards,
                                                                 make_login, browser):
    login = make_login()
    browser.sign_in(browser.get(f"{dashboards['tasks']}/"), login)
    browser.get(f"{dashboards['accounting']}/")

    browser.confirm(browser.get(f"{dashboards['tasks']}/auth/logout"))  # frames not loaded

    with provider.engine.connect() as conn:
        account = conn.execute(select(Account.id).where(Account.public_id == login.id)).scalar()
        tokens = conn.execute(select(RefreshToken.client_id, RefreshToken.revoked_at)
                              .where(RefreshToken.account_id == account)).all()
    assert {client for client, _ in tokens} == {"tasks", "accounting"}
    assert all(revoked is not None for _, revoked in tokens)


def test_expired_access_token_is_refreshed_silently(postgres_server, kafka_broker, browser):
    port = free_port()
    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          clients=dashboard_clients({"tasks": port}),
                          access_token_ttl=timedelta(seconds=2)) as provider:
        config = provider.dashboard_config("tasks", port)
        with serve_app(tiny_dashboard(config, provider.verifier(leeway=0)), port=port) as url:
            browser.sign_in(browser.get(f"{url}/"), provider.create_login())
            first_cookie = browser.http.cookies.get("ates_tasks")
            time.sleep(2.5)

            page = browser.http.get(f"{url}/")
            again = browser.http.get(f"{url}/api/whoami")

    assert page.status_code == 200 and "Hello" in page.text
    assert "ates_tasks=" in page.headers["set-cookie"]
    assert browser.http.cookies.get("ates_tasks") != first_cookie
    assert again.status_code == 200 and "set-cookie" not in again.headers


def test_an_unreachable_provider_does_not_end_the_session():
    config = AuthClientConfig(issuer=f"http://127.0.0.1:{free_port()}", client_id="tasks",
                              client_secret="secret", base_url="http://127.0.0.1:8001",
                              secret_key="key")
    auth = DashboardAuth(config)
    carrier = Response()
    auth.write_session(carrier, StoredSession("stale access token", "refresh token", None, None))
    cookie = carrier.headers["set-cookie"].split(";")[0]
    request = Request({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                       "headers": [(b"cookie", cookie.encode())], "state": {}})

    assert auth.user_from_session(request) is None
    assert "ates_session_update" not in request.scope["state"]
