"""The web page at `/`, driven in a real headless Chromium against a real `jdlens serve` process.

Score a pasted JD, check the page against the JSON the API returns for the same text, submit a sentence
correction (with the right and with a wrong API key) and check that it reached the server's feedback store.
Needs Debian's `chromium` and `chromium-driver` packages (CI installs them with apt); skipped without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import jdlens_server

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = os.environ.get("JDLENS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("JDLENS_CHROMEDRIVER", "/usr/bin/chromedriver")
API_KEY = "test-key"
ROLES = ("application", "ml", "research", "general", "other")
ROLE_TYPES = ("application", "ml", "research", "mixed")
# Run the CLI with the interpreter that runs the tests, so the server is the code under test.
JDLENS = [sys.executable, "-c", "from jdlens.cli import main; main()"]

JD = "\n".join(
    [
        "Senior Machine Learning Engineer",
        "Acme Analytics builds fraud detection for European banks.",
        "What you will do:",
        "- Fine-tune transformer models on our transaction data and own the training pipeline.",
        "- Build RAG features with a vector database and evaluate the quality of LLM output.",
        "- PhD in Machine Learning or a related field is required.",
        "- 5+ years of experience with AI/ML technologies.",
        "Benefits: 25 days holiday, a pension and a home office budget.",
    ]
)


def _missing_browser() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not found: install Debian's {package} (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture()
def server_env(project: Path, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        JDLENS_API_KEY=API_KEY,
        JDLENS_HOME=str(project),
        JDLENS_STATE=str(tmp_path / "state"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture()
def server(tiny_model_dir: Path, server_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`jdlens serve` on a free port; yields its base URL and always stops it."""
    with jdlens_server(["--model", str(tiny_model_dir)], server_env, tmp_path / "server.log", tmp_path) as base:
        yield base


@pytest.fixture()
def browser() -> Iterator[object]:
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,2400",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_score_page_end_to_end(browser: object, server: str, server_env: dict[str, str], tmp_path: Path) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser
    shot = tmp_path / "browser.png"

    def where() -> str:
        driver.save_screenshot(str(shot))
        return f"(screenshot: {shot}; server log: {tmp_path / 'server.log'})"

    def wait_for(condition, what: str, timeout: float = 60):
        try:
            return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
        except TimeoutException:
            pytest.fail(f"timed out waiting for {what} {where()}")

    # The JSON the page should show, for the same text.
    resp = httpx.post(f"{server}/v1/score", json={"text": JD}, timeout=60)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    sentences = report["sentences"]
    assert len(sentences) >= 6, f"the JD should split into its lines: {[s['text'] for s in sentences]}"

    # ---------------------------------------------------------------- score a pasted JD
    driver.get(server + "/")
    assert "jdlens" in driver.title, f"unexpected page title {driver.title!r} {where()}"
    area = driver.find_element(By.ID, "jd-text")
    area.clear()
    area.send_keys(JD)
    assert area.get_attribute("value") == JD, f"the textarea does not hold the JD as typed {where()}"
    driver.find_element(By.ID, "score-btn").click()

    def scored(d):
        err = d.find_element(By.ID, "error")
        if err.is_displayed():
            return "error: " + err.text
        return "ok" if d.find_element(By.ID, "verdict").get_attribute("data-score") else False

    state = wait_for(scored, "the verdict")
    assert state == "ok", f"the page showed an error instead of the report: {state} {where()}"

    verdict = driver.find_element(By.ID, "verdict")
    assert verdict.is_displayed(), f"the verdict is not visible {where()}"
    role_type = driver.find_element(By.ID, "verdict-role-type").text.strip().lower()
    assert role_type in ROLE_TYPES, f"verdict role type {role_type!r} is not one of {ROLE_TYPES} {where()}"
    assert role_type == report["role_type"], f"page says {role_type!r}, API says {report['role_type']!r} {where()}"
    score_text = driver.find_element(By.ID, "score").text.strip()
    assert score_text.isdigit() and 0 <= int(score_text) <= 100, f"score {score_text!r} is not 0-100 {where()}"
    assert int(score_text) == report["score"], f"page score {score_text}, API score {report['score']} {where()}"
    assert report["role_title"] in verdict.text, f"the verdict lacks the role title {where()}"
    model_info = driver.find_element(By.ID, "model-info").text
    assert report["model"]["name"] in model_info, f"model name missing from {model_info!r} {where()}"

    # One highlighted sentence per sentence in the API's report, in order, with its role.
    rows = driver.find_elements(By.CSS_SELECTOR, "#sentences .sentence")
    assert len(rows) == len(sentences), (
        f"{len(rows)} .sentence elements on the page, {len(sentences)} sentences in the API report {where()}"
    )
    for row, s in zip(rows, sentences, strict=True):
        role = row.get_attribute("data-role")
        assert role in ROLES, f"sentence {s['index']} has data-role {role!r} {where()}"
        assert role == s["role"], f"sentence {s['index']}: page role {role!r}, API role {s['role']!r} {where()}"
        text = row.find_element(By.CSS_SELECTOR, ".sentence-text").text
        assert text == s["text"], f"sentence {s['index']}: page text {text!r}, API text {s['text']!r} {where()}"
    shown_mistakes = [m.get_attribute("data-type") for m in driver.find_elements(By.CSS_SELECTOR, ".mistake")]
    assert shown_mistakes == [m["type"] for m in report["mistakes"]], f"mistakes list differs {where()}"

    # ---------------------------------------------------------------- correct the first sentence
    first = sentences[0]
    # Not "other": a flagged sentence cannot be "other", and the tiny model's flags are arbitrary.
    corrected = "research" if first["role"] != "research" else "ml"
    key_box = driver.find_element(By.ID, "api-key")
    key_box.clear()
    key_box.send_keys(API_KEY)
    row = rows[0]
    row.find_element(By.CSS_SELECTOR, ".correct-toggle").click()
    role_select = Select(row.find_element(By.CSS_SELECTOR, "select.correct-role"))
    assert role_select.first_selected_option.get_attribute("value") == first["role"], (
        f"the correction form is not prefilled with the predicted role {where()}"
    )
    checked = sorted(
        cb.get_attribute("value") for cb in row.find_elements(By.CSS_SELECTOR, "input.correct-flag") if cb.is_selected()
    )
    assert checked == sorted(first["flags"]), f"flags prefilled {checked}, predicted {first['flags']} {where()}"
    role_select.select_by_value(corrected)
    row.find_element(By.CSS_SELECTOR, ".correct-btn").click()
    status = driver.find_element(By.ID, "feedback-status")
    wait_for(lambda d: status.text.strip() and status.text.strip() != "Sending…", "the feedback status", 30)
    assert status.text.strip() == "Correction saved", f"feedback status is {status.text!r} {where()}"

    # ---------------------------------------------------------------- a wrong key shows the server's message
    wrong = httpx.post(
        f"{server}/v1/feedback",
        json={"text": first["text"], "role": corrected, "flags": first["flags"]},
        headers={"Authorization": "Bearer wrong-key"},
        timeout=30,
    )
    assert wrong.status_code in (401, 403), wrong.text
    server_message = wrong.json()["error"]["message"]
    key_box.clear()
    key_box.send_keys("wrong-key")
    target = rows[1]
    target.find_element(By.CSS_SELECTOR, ".correct-toggle").click()
    target.find_element(By.CSS_SELECTOR, ".correct-btn").click()
    wait_for(lambda d: "err" in (status.get_attribute("class") or ""), "the wrong-key error", 30)
    assert server_message in status.text, f"expected {server_message!r} in {status.text!r} {where()}"
    assert server_message in target.find_element(By.CSS_SELECTOR, ".feedback-msg").text, where()

    driver.save_screenshot(str(shot))

    # ---------------------------------------------------------------- the correction reached the server
    out = tmp_path / "feedback.jsonl"
    done = subprocess.run(
        [*JDLENS, "feedback", "export", str(out)],
        env=server_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"`jdlens feedback export` failed: {done.stdout}{done.stderr}"
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(lines) == 1, f"expected exactly the one accepted correction, got {lines} {where()}"
    assert lines[0]["text"] == first["text"], lines[0]
    assert lines[0]["role"] == corrected, lines[0]
    assert sorted(lines[0]["flags"]) == sorted(first["flags"]), lines[0]

    # The key is kept in localStorage across reloads.
    driver.refresh()
    kept = driver.find_element(By.ID, "api-key").get_attribute("value")
    assert kept == "wrong-key", f"API key not kept across a reload: {kept!r} {where()}"
    print(f"screenshot: {shot}")
