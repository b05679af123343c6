"""axe-core on each main page, at 1280x800 and at 375 px: no serious or critical
violation (issue 12). axe-core is vendored under tests/vendor/axe-core/."""

from pathlib import Path

import pytest
import test_browser
from playwright.sync_api import Page, expect
from test_browser import PHONE, sign_in

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}

browser = test_browser.browser
open_context = test_browser.open_context


def violations(page: Page) -> list[str]:
    """Serious and critical violations on the page as it is, one line each."""
    # Through the DevTools protocol: the page's CSP (script-src 'self') stays in force
    # and would refuse a <script> tag added to it.
    page.evaluate(AXE.read_text())
    found = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations
              .filter(v => v.impact === "serious" || v.impact === "critical")
              .map(v => `${v.impact} ${v.id}: ${v.help} at ` +
                        v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", "));
        }"""
    )
    return found


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_main_pages_have_no_serious_accessibility_violation(
    hospital, open_context, viewport
):
    seeded = test_browser._seed(hospital)
    consult = f"/consults/{seeded['story']}"
    problems = []

    visitor = open_context(viewport=viewport).new_page()
    visitor.goto("/sign-in")
    problems += [f"/sign-in: {v}" for v in violations(visitor)]

    pages = {
        "castillo@h.test": ["/queue/radiology", consult, "/notifications"],
        "patel@h.test": ["/consults/new", "/consults", consult],
        "okafor@h.test": [
            "/departments/radiology/settings",
            "/departments/radiology/dashboard",
        ],
    }
    for email, paths in pages.items():
        page = sign_in(open_context(viewport=viewport), email)
        for path in paths:
            page.goto(path)
            expect(page.locator("main h1")).to_be_visible()
            page.wait_for_load_state("networkidle")
            problems += [f"{email} {path}: {v}" for v in violations(page)]
    assert not problems, "\n".join(problems)
