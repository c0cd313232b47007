"""The report in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Hostile payloads sit in prompts, responses, pair ids, metadata, reason codes and plot labels. The page
must load, no payload may run (no dialog, no window flag, no injected element, no console error, no
network request), the payloads must be visible as text, the pair browser must work, and a screenshot
must show a real (non-blank) render with the verdict in the DOM.

Chromium is required, not optional: CI installs it (``make browser``); without it this test fails.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pytest
from report_fixtures import PAYLOADS, flagged_ids, make_audit

from prefaudit.report import render_html
from prefaudit.report.browser import EMBED_CHARS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions"]
pytestmark = pytest.mark.browser


def chromium_path() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("headless Chromium is required for the browser test: /usr/bin/chromium is missing "
                    "(install it with `make browser` or `apt-get install -y chromium`)", pytrace=False)
    return found


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One browser page on the hostile report; events recorded from before the page loads."""
    from playwright.sync_api import sync_playwright

    audit = make_audit(60, hostile=True)
    path = tmp_path_factory.mktemp("browser") / "hostile.html"
    render_html(audit, path, gate={"metrics": {"noise.estimated_rate": {"max": 0.1}}})
    events: dict[str, list] = {"dialogs": [], "console": [], "errors": [], "requests": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(10_000)
        page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
        page.on("console", lambda m: events["console"].append((m.type, m.text)))
        page.on("pageerror", lambda e: events["errors"].append(str(e)))
        page.on("request", lambda r: events["requests"].append(r.url))
        page.goto(path.as_uri())
        page.wait_for_selector("html[data-browser=ready]", timeout=10_000)
        yield page, events, audit
        browser.close()


def injected(page) -> dict:
    """What a successful injection would leave behind in the DOM or on window."""
    return page.evaluate("""() => {
        const all = Array.from(document.querySelectorAll('*'));
        return {
            pwned: window.__pwned === undefined ? null : window.__pwned,
            img: document.querySelectorAll('img').length,
            scripts: document.querySelectorAll('script').length,
            injected: document.querySelectorAll('#injected').length,
            jsLinks: document.querySelectorAll('a[href^="javascript:" i]').length,
            onAttrs: all.filter(e => Array.from(e.attributes).some(a => a.name.toLowerCase().startsWith('on'))).length,
            iframes: document.querySelectorAll('iframe, object, embed, textarea').length,
        };
    }""")


def wait_change(locator, before: str, timeout_s: float = 5.0) -> str:
    """Poll until the element's text changes (the page's CSP forbids Playwright's eval-based waits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = locator.inner_text()
        if now != before:
            return now
        time.sleep(0.05)
    raise AssertionError(f"text stayed {before!r}")


CLEAN = {"pwned": None, "img": 0, "scripts": 2, "injected": 0, "jsLinks": 0, "onAttrs": 0, "iframes": 0}


def test_page_loads_and_no_payload_runs(session):
    page, events, _ = session
    assert page.title().startswith("prefaudit audit")
    assert events["dialogs"] == []
    assert events["errors"] == []
    assert [c for c in events["console"] if c[0] in ("error", "warning")] == []
    assert injected(page) == CLEAN
    # nothing but the file itself was requested (no network, no subresource)
    assert [u for u in events["requests"] if not u.startswith("file://")] == []


def test_payloads_are_visible_as_text(session):
    page, _, _ = session
    text = page.inner_text("body")
    for p in PAYLOADS:
        assert p.replace("\u202e", "⟨U+202E⟩") in text, p
    assert "\u202e" not in text
    # the pair browser renders the first page of flagged pairs, hostile ids included
    assert page.locator("#pb-list article").count() == 25
    first_id = page.locator("#pb-list article code.pid").first.inner_text()
    assert first_id == session[2].pairs.filter(session[2].pairs["pair_id"] == flagged_ids(session[2])[0])[
        "pair_id"][0].replace("\u202e", "⟨U+202E⟩")


def test_pair_browser_search_filter_sort_page(session):
    page, events, audit = session
    n_flagged = len(flagged_ids(audit))
    status = page.locator("#pb-status")
    assert f"of {n_flagged} matching" in status.inner_text()
    before = status.inner_text()
    page.fill("#pb-search", "onerror")
    wait_change(status, before)  # the search is debounced
    hits = page.locator("#pb-list article").count()
    expected = sum("onerror" in " ".join(map(str, r)).lower() for r in
                   audit.data.df.filter(audit.data.df["pair_id"].is_in(flagged_ids(audit))).rows())
    assert hits == expected > 0
    page.fill("#pb-search", "")
    page.select_option("#pb-reason", "empty_response")
    page.wait_for_timeout(50)
    reasons = page.locator("#pb-list article .badge.reason").all_inner_texts()
    assert page.locator("#pb-list article").count() > 0 and "empty_response" in reasons
    page.select_option("#pb-reason", "")
    page.select_option("#pb-analyzer", label="noise")
    page.select_option("#pb-sort", label="noise score")
    page.wait_for_timeout(50)
    shown = page.locator("#pb-list article").count()
    assert shown == int(audit.pairs["noise_flag"].sum())
    page.select_option("#pb-analyzer", "")
    page.select_option("#pb-size", "10")
    page.click("#pb-next")
    assert "pairs 11–20" in status.inner_text()
    before = status.inner_text()
    page.fill("#pb-search", "long long")  # the one pair with a long prompt
    wait_change(status, before)
    card = page.locator("#pb-list article")
    assert card.count() == 1
    short = card.locator(".txt").first.inner_text()
    card.locator("button.more").click()
    assert card.locator("button.more").inner_text() == "show less"
    full = card.locator(".txt").first.inner_text()
    assert short.startswith("…") and len(short) == 400 and full.endswith(short[1:])
    assert len(full) == EMBED_CHARS  # the embedded text, itself cut (and labelled so)
    assert "cut for the report" in card.locator(".lab").first.inner_text().lower()
    assert events["dialogs"] == [] and injected(page) == CLEAN


def test_screenshot_is_not_blank_and_shows_the_verdict(session, tmp_path):
    from PIL import Image

    page, _, _ = session
    page.evaluate("window.scrollTo(0, 0)")
    assert page.inner_text("#verdict").strip().lower() == "fail"
    assert page.locator(".banner.fail").is_visible()
    png = page.screenshot(full_page=False)
    (tmp_path / "report.png").write_bytes(png)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # text, plots, banner: far from a single colour
    # the verdict banner's red is on screen (at the top of the first viewport)
    box = page.locator(".banner").bounding_box()
    px = img.getpixel((int(box["x"] + 5), int(box["y"] + box["height"] / 2)))
    assert px[0] > 150 and px[1] < 80 and px[2] < 80, px
