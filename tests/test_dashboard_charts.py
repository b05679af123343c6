"""The dashboard's charts (issue 12: 7): drawn by pygal, whole-number ticks for
counts, and readable with a single week of data."""

import base64
import re
from datetime import timedelta
from urllib.parse import unquote
from xml.etree import ElementTree

import pytest
from test_pages import sign_in

from broker import clock

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def browser(app):
    return app.test_client()


def charts_of(page: str) -> dict[str, ElementTree.Element]:
    """Each chart image of the page, by its caption: the SVG it shows."""
    found = {}
    for caption, uri in re.findall(
        r"<figcaption>(.*?)</figcaption><img class=\"chart\" src=\"([^\"]+)\"", page
    ):
        head, data = uri.split(",", 1)
        svg = base64.b64decode(data) if head.endswith(";base64") else unquote(data)
        found[caption] = ElementTree.fromstring(svg)
    return found


def y_ticks(svg: ElementTree.Element) -> list[str]:
    axis = next(g for g in svg.iter(f"{SVG}g") if "axis y" in g.get("class", ""))
    return [t.text for t in axis.iter(f"{SVG}text")]


@pytest.fixture
def one_week(app, hospital, new_consult):
    """This week: one consult escalated once, one answered and rated 4."""
    escalated = new_consult()
    rated = new_consult(urgency="routine")
    path = f"/api/consults/{rated['id']}"
    assert hospital.castillo.post(f"{path}/claim").status_code == 200
    answer = {"body": "No collection."}
    assert hospital.castillo.post(f"{path}/answer", json=answer).status_code == 200
    assert hospital.patel.post(f"{path}/close", json={"rating": 4}).status_code == 200
    at = (clock.now() + timedelta(minutes=20)).isoformat()
    swept = app.test_cli_runner().invoke(args=["sweep", "--at", at])
    assert f"consult #{escalated['id']} escalated to level 1" in swept.output


def test_count_axes_have_whole_number_ticks(one_week, browser):
    sign_in(browser, "okafor@h.test")
    page = browser.get("/departments/radiology/dashboard").text
    charts = charts_of(page)

    assert y_ticks(charts["Consults escalated, by week"]) == ["0", "1"]
    assert y_ticks(charts["Mean rating (1–5), by week"]) == [
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    assert y_ticks(charts["Claimed and answered within the deadline, by week (%)"]) == [
        "0",
        "25",
        "50",
        "75",
        "100",
    ]


def test_one_week_of_data_is_drawn_as_bars_with_their_values(one_week, browser):
    sign_in(browser, "okafor@h.test")
    page = browser.get("/departments/radiology/dashboard").text
    charts = charts_of(page)

    assert len(charts) == 4
    for caption, svg in charts.items():
        assert "pygal-chart" in svg.get("class", ""), caption
        assert "svg" not in page.split(caption)[1][:40], "charts are images, not inline"
    rating = charts["Mean rating (1–5), by week"]
    bars = [g for g in rating.iter(f"{SVG}g") if g.get("class") == "bar"]
    assert len(bars) == 1
    printed = [
        t.text for t in rating.iter(f"{SVG}text") if "value" in t.get("class", "")
    ]
    assert "4" in printed
