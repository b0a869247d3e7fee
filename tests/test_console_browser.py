"""The operators' console in a real browser: Debian's Chromium, headless, driven by Playwright, against
local mode (a subprocess serving HTTP, moto behind it, a real HTTP receiver as the partners).

A real transfer case is made over HTTP by the partners of tests/test_e2e_transfer.py; Beijing's registry
is down when the case becomes ready to book, so that delivery is retried and dead-lettered. The
operator signs in with the token, opens the case page, sees one lane per agency with every message,
replays the dead letter from the page and sees it delivered. Screenshots are saved under
build/screenshots/ and looked at: real PNGs of a sensible size, the lanes' pixels there (the dead
message's red before the replay, none after).
"""
from __future__ import annotations

import json
import os
import struct
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

import pytest

from tests.support import partners_doc
from tests.test_e2e import http

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "console-test-token-" + uuid.uuid4().hex
DEAD_RGB = (0xC0, 0x39, 0x2B)  # console.css --dead: only a dead message is drawn in it in the lanes
DELIVERED_RGB = (0x2E, 0x85, 0x55)  # console.css --out: a message out, delivered
WAIT_S = 30

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is not installed (`make chromium` installs Debian's package)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


# ------------------------------------------------------------------------------------------------
# looking at a PNG without an imaging library


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG, as Chromium writes them."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    at, idat, header = 8, b"", None
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunk = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        at += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    channels = 3 if color == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytes(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        previous = rows[-1]
    return width, height, [bytes(r) if channels == 3 else bytes(b for i, b in enumerate(r) if i % 4 != 3) for r in rows]


def count_rgb(rows: list[bytes], rgb: tuple[int, int, int]) -> int:
    needle = bytes(rgb)
    return sum(sum(1 for x in range(0, len(row), 3) if row[x:x + 3] == needle) for row in rows)


def looked_at(path: Path, min_width: int, min_height: int) -> list[bytes]:
    assert path.stat().st_size > 5_000, f"{path} is nearly empty"
    width, height, rows = png_pixels(path)
    assert width >= min_width and height >= min_height, (path, width, height)
    colours = {row[x:x + 3] for row in rows[::7] for x in range(0, len(row), 21)}
    assert len(colours) > 8, f"{path} is (nearly) one colour"
    return rows


# ------------------------------------------------------------------------------------------------
# the hub and the case


def ops(hub, path: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    return http(method, f"{hub.url}/v1/ops/{path}", json.dumps(body).encode() if body is not None else None,
                {"hub-operator-token": TOKEN, "hub-operator": "ops-e2e", "content-type": "application/json"})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.test_e2e import hub_with_partners
    from tests.test_e2e_transfer import Inbox, World

    patch = pytest.MonkeyPatch()
    # local mode copies this process's environment: a known token, retries within seconds
    for name, value in (("HUB_OPERATOR_TOKEN", TOKEN), ("HUB_RETRY_SCHEDULE", "1,1"), ("HUB_SWEEP_INTERVAL", "1"),
                        ("HUB_SWEEP_GRACE", "5")):
        patch.setenv(name, value)
    try:
        with hub_with_partners(tmp_path_factory.mktemp("console"), partners_doc) as (hub, doc, receiver):
            yield World(hub, doc, Inbox(receiver, doc["hub"]["signing_secret"]))
    finally:
        patch.undo()


def dead_ready_to_book(world) -> tuple[str, str]:
    """A Beijing transfer, paid and cleared while the registry is down: its case.ready_to_book dies."""
    from tests.test_e2e_transfer import _to_orders
    from tests.test_transfer_flow import clearance, pay

    case_id = f"E2E-CONSOLE-{uuid.uuid4().hex[:6]}"
    [order] = _to_orders(world, case_id, "obligee_pays_all", None, 1)
    world.post("bj-pay", "payment.succeeded", pay(order["data"]), answering=order)
    world.read_until("bj-pay", case_id, lambda c: c["orders"][0]["state"] == "paid", "the order paid")
    world.inbox.receiver.path_status["/bj-registry"] = 500
    world.post("bj-tax", "tax.cleared", clearance(case_id))
    deadline = time.monotonic() + WAIT_S
    while True:
        status, body = ops(world.hub, "dead-letters?partner=bj-registry")
        assert status == 200, body
        dead = [d for d in body["dead_letters"] if d.get("case_key", "").startswith(case_id + "#")]
        if dead:
            break
        assert time.monotonic() < deadline, "case.ready_to_book was not dead-lettered in time"
        time.sleep(0.5)
    [letter] = dead
    assert letter["type"] == "case.ready_to_book" and letter["attempts"] == 3
    world.inbox.receiver.path_status.clear()  # the registry is back
    return case_id, letter["delivery_id"]


def test_the_operator_sees_the_case_as_lanes_and_replays_its_dead_letter_from_the_page(world, tmp_path):
    hub = world.hub
    assert f"operators' console: {hub.url}/console" in hub.log.read_text()  # local mode says where, with the token
    case_id, dead_id = dead_ready_to_book(world)
    status, detail = ops(hub, f"cases/{case_id}")
    assert status == 200, detail
    [case] = detail["cases"]
    agencies = [a["partner_id"] for a in case["agencies"]]
    assert agencies == ["bj-registry", "bj-tax", "bj-fiscal", "bj-pay"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("console-*.png"):
        old.unlink()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900})
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_S * 1000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            # Sign in: a wrong token is refused, the right one opens the overview.
            page.goto(f"{hub.url}/console")
            page.fill("#token-form input[name=operator]", "ops-e2e")
            page.fill("#token-form input[name=token]", "not-the-token-at-all")
            page.click("#token-form button[type=submit]")
            page.wait_for_selector("#sign-in-error:has-text('not accepted')")
            page.fill("#token-form input[name=operator]", "ops-e2e")
            page.fill("#token-form input[name=token]", TOKEN)
            page.click("#token-form button[type=submit]")
            page.wait_for_selector(".tiles .tile")
            assert page.inner_text("#who") == "signed in as ops-e2e"
            dead_tile = page.locator(".tile[href='#/dead-letters'] .count")
            assert int(dead_tile.inner_text()) >= 1
            page.screenshot(path=str(SHOTS / "console-overview.png"), full_page=True)

            # The case page, opened from the search box: one lane per agency, every message on it.
            page.fill("#case-search input[name=case_id]", case_id)
            page.click("#case-search button[type=submit]")
            page.wait_for_selector("svg.lanes g.lane")
            lanes = page.locator("svg.lanes g.lane")
            assert [lanes.nth(i).get_attribute("data-agency") for i in range(lanes.count())] == agencies
            assert page.locator("svg.lanes g.hub-lane").count() == 1
            for agency in agencies:  # each agency's messages are drawn in its own lane
                expected = sum(1 for t in case["timeline"] if t["partner_id"] == agency)
                assert page.locator(f"svg.lanes g.lane[data-agency='{agency}'] g.message").count() == expected
            assert page.locator("svg.lanes g.message").count() == len(case["timeline"])
            types = {page.locator("svg.lanes g.message").nth(i).get_attribute("data-type")
                     for i in range(page.locator("svg.lanes g.message").count())}
            assert {"application.submitted", "tax.assessment_requested", "nontax.bill_requested",
                    "payment.order_requested", "payment.succeeded", "tax.cleared", "case.ready_to_book"} <= types
            assert page.locator(f"svg.lanes g.lane[data-agency='bj-registry'] g.message.dead[data-ref='{dead_id}']"
                                ).count() == 1
            assert page.locator("svg.lanes g.clock").count() == len(case["clocks"]) >= 1
            page.screenshot(path=str(SHOTS / "console-case.png"), full_page=True)
            page.locator("svg.lanes").screenshot(path=str(SHOTS / "console-lanes-dead.png"))
            dead_at = marker_centre(page, dead_id)

            # Replay from the page; it refreshes itself until the delivery is delivered.
            row = page.locator(f"tr.message-row[data-ref='{dead_id}']")
            assert row.get_attribute("data-state") == "dead"
            assert row.locator("input[name=reason]").input_value() == "receiver_recovered"
            row.locator("button[type=submit]").click()
            page.wait_for_selector(f"tr.message-row[data-ref='{dead_id}'][data-state='delivered']")
            page.wait_for_selector(f"svg.lanes g.message.delivered[data-ref='{dead_id}']")
            page.locator("svg.lanes").screenshot(path=str(SHOTS / "console-lanes-replayed.png"))
            replayed_at = marker_centre(page, dead_id)
            page.screenshot(path=str(SHOTS / "console-case-replayed.png"), full_page=True)

            # The other views an operator uses: partner health, the audit log's checkpoint, the actions.
            page.click("nav a[href='#/partners']")
            page.wait_for_selector("tr[data-partner='bj-registry']")
            page.screenshot(path=str(SHOTS / "console-partners.png"), full_page=True)
            page.click("nav a[href='#/actions']")
            page.wait_for_selector("table td:has-text('dead_letter.replay')")
            assert errors == [], errors
        finally:
            browser.close()

    # What the page did, the hub did: the registry got the same webhook-id, and the action is on record.
    status, delivered = ops(hub, f"deliveries/{dead_id}")
    assert status == 200 and delivered["state"] == "delivered" and delivered["replays"] == 1
    status, body = ops(hub, "actions")
    [action] = [a for a in body["actions"] if a["details"]["target_ref"] == dead_id]
    assert action["details"]["operator_id"] == "ops-e2e" and action["details"]["reason"] == "receiver_recovered"
    registry_calls = [r for r in world.inbox.receiver.others + drain_all(world.inbox.receiver)
                      if r["headers"]["webhook-id"] == dead_id]
    assert registry_calls and registry_calls[-1]["status"] == 200

    # Look at the pictures: real PNGs of a sensible size; the lanes are there, red dead letter and all.
    for name in ("console-overview.png", "console-case.png", "console-case-replayed.png", "console-partners.png"):
        looked_at(SHOTS / name, 1400, 600)
    before = looked_at(SHOTS / "console-lanes-dead.png", 600, 70 * (len(agencies) + 1))
    after = looked_at(SHOTS / "console-lanes-replayed.png", 600, 70 * (len(agencies) + 1))
    assert count_rgb(before, DEAD_RGB) >= 20, "the dead message is not drawn in the lanes"
    assert count_rgb(after, DEAD_RGB) == 0, "a dead message is still drawn after the replay"
    # The replayed message's own marker: red when dead, the delivered green after.
    assert pixel(before, *dead_at) == DEAD_RGB and pixel(after, *replayed_at) == DELIVERED_RGB


def marker_centre(page, ref: str) -> tuple[int, int]:
    """Where a message's circle is drawn, in the lanes' own screenshot."""
    circle = page.locator(f"svg.lanes g.message[data-ref='{ref}'] circle").bounding_box()
    lanes = page.locator("svg.lanes").bounding_box()
    return round(circle["x"] + circle["width"] / 2 - lanes["x"]), round(circle["y"] + circle["height"] / 2 - lanes["y"])


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    return tuple(rows[y][3 * x:3 * x + 3])


def drain_all(receiver) -> list[dict]:
    found = []
    while not receiver.requests.empty():
        found.append(receiver.requests.get_nowait())
    return found
