"""The dashboard at /ui, driven in a real headless Chromium against a real stack.

Needs Debian's ``chromium`` and ``chromium-driver`` (.ci/run installs them);
deselect with ``-m "not browser"``. Screenshots go to ``$AIA_TEST_ARTIFACTS``
(default ``tests/artifacts/``), and each test prints where it wrote one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from aia_api.identity.browser import COOKIE_NAME
from aia_api.ui.routes import UI_POLICY
from tests.e2e.people import next_code, person, with_mfa
from tests.support import TEST_PASSWORD, Stack, wait_status

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("AIA_TEST_ARTIFACTS") or Path(__file__).parents[2] / "artifacts")
# Planted where the page shows API data: if any of it ran, it would set this.
XSS_SCRIPT = "<script>window.__xss = 1</script>"
XSS_COLUMN = "<img src=x onerror=window.__xss=2>"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = "needs Debian's chromium and chromium-driver (apt-get install -y ...)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, redis_stack: Stack) -> Iterator[WebDriver]:
    """The browser on a fresh, signed-out dashboard."""
    browser.get(f"{redis_stack.api_url}/ui")
    browser.delete_all_cookies()
    browser.get(f"{redis_stack.api_url}/ui")
    _visible(browser, "#signin")
    yield browser
    browser.delete_all_cookies()


def _wait(driver: WebDriver, timeout: float = 20) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout)


def _visible(driver: WebDriver, selector: str, timeout: float = 20) -> WebElement:
    found: WebElement = _wait(driver, timeout).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, selector))
    )
    return found


def _text_in(driver: WebDriver, selector: str, text: str, timeout: float = 20) -> None:
    _wait(driver, timeout).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text)
    )


def _type(driver: WebDriver, selector: str, text: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, selector)
    field.clear()
    field.send_keys(text)


def _sign_in_with_key(driver: WebDriver, key: str) -> None:
    _type(driver, "#api-key", key)
    driver.find_element(By.CSS_SELECTOR, "#signin-key-submit").click()
    _visible(driver, "#app")


def _screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _no_script_ran(driver: WebDriver) -> None:
    assert driver.execute_script("return window.__xss === undefined")
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


def _tokens_stay_out_of_reach(driver: WebDriver) -> None:
    """No credential in a URL, in storage, or readable by script."""
    storage: dict[str, Any] = driver.execute_script(
        "return {local: {...localStorage}, session: {...sessionStorage}, cookie: document.cookie}"
    )
    assert storage == {"local": {}, "session": {}, "cookie": ""}
    assert "?" not in driver.current_url
    assert driver.current_url.endswith("/ui")


def test_page_headers_and_assets(redis_stack: Stack) -> None:
    url = redis_stack.api_url
    page = httpx.get(f"{url}/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == UI_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in UI_POLICY
    assert "script-src 'self'" in UI_POLICY
    assert "unsafe-inline" not in UI_POLICY
    # No inline script or style, and nothing from elsewhere.
    assert "<script>" not in page.text
    assert "style=" not in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text
    script = httpx.get(f"{url}/ui/static/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["content-security-policy"] == UI_POLICY
    for missing in ("nope.js", "..%2Fapp.py", "index.html"):
        response = httpx.get(f"{url}/ui/static/{missing}")
        assert response.status_code == 404, missing
        assert response.headers["content-type"] == "application/problem+json"


def test_sign_in_with_a_key_submit_watch_succeed_and_open_the_timeline(
    page: WebDriver, redis_stack: Stack
) -> None:
    _sign_in_with_key(page, redis_stack.create_key("operator"))
    cookie = page.get_cookie(COOKIE_NAME)
    assert cookie is not None, "Chromium kept no Secure cookie on http://127.0.0.1"
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    _text_in(page, "#queues tbody", "default")

    page.find_element(By.CSS_SELECTOR, '#tabs button[data-view="tasks"]').click()
    _type(page, "#submit-payload", '{"seconds": 1.5, "steps": 3}')
    page.find_element(By.CSS_SELECTOR, "#submit-button").click()
    _text_in(page, "#submit-message", "Submitted")
    task_id = page.find_element(By.CSS_SELECTOR, "#submit-message").text.split()[-1]
    row = f'#tasks tr[data-task-id="{task_id}"]'
    _visible(page, row)
    # No reload: the row's status changes in place as the events come.
    marker = page.execute_script("return window.__loadMarker = Math.random()")
    _text_in(page, f"{row} td.status", "succeeded", timeout=30)
    assert page.execute_script("return window.__loadMarker") == marker

    page.find_element(By.CSS_SELECTOR, f"{row} a.open").click()
    _text_in(page, "#detail-id", task_id)
    _text_in(page, "#timeline", "succeeded")
    events = [
        li.get_attribute("data-event") for li in page.find_elements(By.CSS_SELECTOR, "#timeline li")
    ]
    assert events[0] == "queued"
    assert "started" in events
    assert events.count("progress") == 3
    assert events[-1] == "succeeded"
    _tokens_stay_out_of_reach(page)
    _screenshot(page, "dashboard-task-succeeded")


def test_sign_in_with_password_and_totp_and_cancel_a_long_sleep(
    page: WebDriver, redis_stack: Stack
) -> None:
    someone = with_mfa(redis_stack, person(redis_stack, "operator"))
    assert someone.totp is not None
    _type(page, "#username", someone.username)
    _type(page, "#password", TEST_PASSWORD)
    page.find_element(By.CSS_SELECTOR, "#signin-user-submit").click()
    _text_in(page, "#signin-message", "one-time code")
    _type(page, "#password", TEST_PASSWORD)
    _type(page, "#totp", next_code(someone.totp))
    page.find_element(By.CSS_SELECTOR, "#signin-user-submit").click()
    _visible(page, "#app")
    _text_in(page, "#who", "user")

    page.find_element(By.CSS_SELECTOR, '#tabs button[data-view="tasks"]').click()
    _type(page, "#submit-payload", '{"seconds": 60, "steps": 60}')
    page.find_element(By.CSS_SELECTOR, "#submit-button").click()
    _text_in(page, "#submit-message", "Submitted")
    task_id = page.find_element(By.CSS_SELECTOR, "#submit-message").text.split()[-1]
    row = f'#tasks tr[data-task-id="{task_id}"]'
    _text_in(page, f"{row} td.status", "running", timeout=30)
    page.find_element(By.CSS_SELECTOR, f"{row} button.cancel").click()
    _text_in(page, f"{row} td.status", "cancelled", timeout=30)
    with redis_stack.client() as api:
        assert wait_status(api, task_id, {"cancelled"})["status"] == "cancelled"


def test_a_wrong_password_is_told_on_the_page(page: WebDriver, redis_stack: Stack) -> None:
    username = redis_stack.create_user("viewer")
    _type(page, "#username", username)
    _type(page, "#password", "not the password")
    page.find_element(By.CSS_SELECTOR, "#signin-user-submit").click()
    _text_in(page, "#signin-message", "username or password is wrong")
    assert not page.find_element(By.CSS_SELECTOR, "#app").is_displayed()
    _screenshot(page, "dashboard-wrong-password")


def test_a_revoked_session_returns_to_the_sign_in_form(page: WebDriver, redis_stack: Stack) -> None:
    with redis_stack.client() as api:
        made = api.post("/v1/keys", json={"name": "ui-revoked", "role": "viewer"})
        assert made.status_code == 201, made.text
        _sign_in_with_key(page, made.json()["key"])
        assert api.delete(f"/v1/keys/{made.json()['id']}").status_code == 204
    # The next poll of /status is refused: the page says so and asks again.
    _visible(page, "#signin", timeout=30)
    _text_in(page, "#signin-message", "session has ended")
    assert not page.find_element(By.CSS_SELECTOR, "#app").is_displayed()
    # A reload with no session at all lands on the form too, not a blank page.
    page.delete_all_cookies()
    page.refresh()
    _visible(page, "#signin")


def test_values_from_the_api_are_shown_as_text(page: WebDriver, redis_stack: Stack) -> None:
    with redis_stack.client() as api:
        dataset = api.post(
            "/v1/ml/datasets?name=xss-check",
            content=f'"{XSS_COLUMN}",b\n1,2\n3,4\n'.encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert dataset.status_code == 201, dataset.text
        agent = api.post(
            "/v1/agents", json={"name": "xss-agent", "type": "content", "description": XSS_SCRIPT}
        )
        assert agent.status_code == 201, agent.text
    _sign_in_with_key(page, redis_stack.api_key)

    # A task whose payload holds a script, submitted from the page (no agents
    # worker here: it stays queued, which is all this needs).
    page.find_element(By.CSS_SELECTOR, '#tabs button[data-view="tasks"]').click()
    Select(page.find_element(By.CSS_SELECTOR, "#submit-type")).select_by_value("agents.run")
    payload = {"agent_id": agent.json()["id"], "input": {"title": XSS_SCRIPT}}
    _type(page, "#submit-payload", json.dumps(payload))
    page.find_element(By.CSS_SELECTOR, "#submit-button").click()
    _text_in(page, "#submit-message", "Submitted")
    task_id = page.find_element(By.CSS_SELECTOR, "#submit-message").text.split()[-1]
    page.find_element(By.CSS_SELECTOR, f'#tasks tr[data-task-id="{task_id}"] a.open').click()
    _text_in(page, "#detail-payload", XSS_SCRIPT)
    assert not page.find_elements(By.CSS_SELECTOR, "#task-detail script")

    page.find_element(By.CSS_SELECTOR, '#tabs button[data-view="models"]').click()
    _text_in(page, "#datasets", XSS_COLUMN)
    assert not page.find_elements(By.CSS_SELECTOR, "#datasets img")
    page.find_element(By.CSS_SELECTOR, '#tabs button[data-view="agents"]').click()
    _text_in(page, "#agents", XSS_SCRIPT)
    assert not page.find_elements(By.CSS_SELECTOR, "#agents script")
    _no_script_ran(page)
    _screenshot(page, "dashboard-escaped")
    with redis_stack.client() as api:
        api.post(f"/v1/tasks/{task_id}/cancel")
