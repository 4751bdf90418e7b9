"""The web console in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Usage: console_e2e.py '<json config>' — see tests/gateway/console.rs for the config. Prints a JSON
summary on stdout; any failed expectation raises (non-zero exit, message on stderr).

Flows: sign in as SUPER_ADMIN and visit every page of both families; as an ORG_ADMIN visit every
organisation page, create a provider, a provider key, a model (then edit its pricing on its detail
page), delete a team behind its confirmation, an API key with a model grant (the secret shown
once), rotate it, give it a routing policy, run a streamed playground call against the fake upstream and find
its record on the usage page, invite a user; accept the invitation in a fresh context; as a USER
(at 390 px) use the menu button and see that the admin pages are refused. Every page is checked for console errors, page
errors, failed requests and server errors; screenshots go to the configured directory.
"""

import json
import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

cfg = json.loads(sys.argv[1])
BASE = cfg["base"]
ORG = cfg["org"]
SHOTS = cfg["screenshots"]
os.makedirs(SHOTS, exist_ok=True)

ORG_PAGES = ["dashboard", "providers", "models", "mcp-servers", "teams", "users", "apikeys",
             "budgets", "quotas", "usage", "invoices", "playground", "settings"]
ADMIN_PAGES = ["dashboard", "organisations", "teams", "users", "providers", "models", "mcp-servers",
               "apikeys", "budgets", "quotas", "usage", "invoices", "playground", "settings"]

problems = []
# Navigations expected to answer 4xx (a USER on an admin page): the browser logs them as errors.
expected_refusals = set()


def watch(page, label):
    def on_console(message):
        if message.type != "error":
            return
        if "Failed to load resource" in message.text and any(u in message.location.get("url", "") for u in expected_refusals):
            return
        problems.append(f"{label}: console error: {message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"{label}: page error: {error}"))
    page.on("requestfailed", lambda r: problems.append(f"{label}: request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"{label}: {r.status} {r.url}") if r.status >= 500 else None)
    page.on("dialog", lambda dialog: dialog.accept())


def visit(page, path, shot=None, status=200):
    response = page.goto(BASE + path)
    assert response is not None, path
    assert response.status == status, f"{path}: {response.status}"
    if shot:
        page.screenshot(path=os.path.join(SHOTS, f"{shot}.png"), full_page=True)
    return response


def sign_in(page, email, password):
    visit(page, "/login")
    page.fill("#f-email", email)
    page.fill("#f-password", password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()


def submit(page, name):
    with page.expect_navigation():
        page.get_by_role("button", name=name, exact=True).click()


result = {}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])

    # SUPER_ADMIN: every page of both families.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch(page, "super-admin")
    sign_in(page, cfg["super"]["email"], cfg["super"]["password"])
    assert page.url.endswith("/admin/dashboard"), page.url
    for slug in ADMIN_PAGES:
        visit(page, f"/admin/{slug}", shot=f"admin-{slug}")
    for slug in ORG_PAGES:
        visit(page, f"/{ORG}/{slug}")
    context.close()

    # ORG_ADMIN: every organisation page, then the catalog, a key, the playground and usage.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch(page, "org-admin")
    sign_in(page, cfg["orgAdmin"]["email"], cfg["orgAdmin"]["password"])
    assert page.url.endswith(f"/{ORG}/dashboard"), page.url
    for slug in ORG_PAGES:
        visit(page, f"/{ORG}/{slug}", shot=f"org-{slug}")

    visit(page, f"/{ORG}/providers")
    page.get_by_text("Add a provider", exact=True).click()
    page.fill("#f-name", "Upstream")
    page.select_option("#f-type", "OPENAI")
    page.fill("#f-baseUrl", cfg["upstream"])
    submit(page, "Add provider")
    assert re.search(r"/providers/c[0-9a-z]{24}$", page.url), page.url
    page.get_by_text("Add a provider key", exact=True).click()
    page.fill("#f-name", "Primary")
    page.fill("#f-key", "sk-e2e-upstream-secret-0001")
    submit(page, "Add key")
    expect(page.locator(".notice")).to_contain_text("will not be shown again")
    assert "sk-e2e-upstream-secret-0001" not in page.content()
    page.screenshot(path=os.path.join(SHOTS, "org-provider-detail.png"), full_page=True)

    visit(page, f"/{ORG}/models")
    page.get_by_text("Add a model", exact=True).click()
    page.fill("#f-name", "gpt-e2e")
    page.fill("#f-slug", "gpt-4o-upstream")
    page.select_option("#f-type", "chat")
    page.fill("#f-inputUsd", "not-a-price")
    # A refused form answers 400 with the form again, which the browser logs as a failed load.
    expected_refusals.add(f"{BASE}/{ORG}/models")
    submit(page, "Add model")
    expect(page.locator("#f-inputUsd-error")).to_be_visible()
    expected_refusals.discard(f"{BASE}/{ORG}/models")
    page.fill("#f-inputUsd", "2")
    page.fill("#f-outputUsd", "8")
    submit(page, "Add model")
    expect(page.locator("table")).to_contain_text("gpt-e2e")
    expect(page.locator("table")).to_contain_text("$2")

    # The model's detail page: edit its pricing (USD per 1M tokens, pre-filled).
    with page.expect_navigation():
        page.get_by_role("link", name="gpt-e2e", exact=True).click()
    assert page.input_value("#f-outputUsd") == "8"
    page.get_by_text("Edit model", exact=True).click()
    page.fill("#f-outputUsd", "9")
    submit(page, "Save model")
    expect(page.locator(".notice")).to_contain_text("The model was saved")
    expect(page.locator("dl.facts")).to_contain_text("$9")
    page.screenshot(path=os.path.join(SHOTS, "org-model-detail.png"), full_page=True)

    # A delete behind its no-script confirmation: a throwaway team.
    visit(page, f"/{ORG}/teams")
    page.get_by_text("Create a team", exact=True).click()
    page.fill("#f-name", "short-lived")
    submit(page, "Create team")
    page.get_by_text("Delete team…", exact=True).click()
    page.screenshot(path=os.path.join(SHOTS, "org-team-delete-confirm.png"), full_page=True)
    submit(page, "Delete team")
    assert page.url.endswith(f"/{ORG}/teams"), page.url
    expect(page.locator("main")).not_to_contain_text("short-lived")

    visit(page, f"/{ORG}/apikeys")
    page.get_by_text("Create an API key", exact=True).click()
    page.fill("#f-name", "e2e key")
    page.select_option("#f-type", "ORGANISATION")
    page.get_by_label("gpt-e2e (chat)").check()
    submit(page, "Create key")
    secret = page.locator("#new-secret").inner_text().strip()
    assert secret.startswith("sk_") and len(secret) > 40, secret
    page.screenshot(path=os.path.join(SHOTS, "org-apikey-created.png"), full_page=True)
    page.get_by_role("button", name="Copy", exact=True).click()
    with page.expect_navigation():
        page.get_by_role("link", name="Go to the key's page").click()
    assert secret not in page.content(), "the secret is shown only once"
    expect(page.locator("#models")).to_contain_text("gpt-e2e")
    key_page = page.url
    page.screenshot(path=os.path.join(SHOTS, "org-apikey-detail.png"), full_page=True)
    submit(page, "Rotate secret")
    rotated = page.locator("#new-secret").inner_text().strip()
    assert rotated.startswith("sk_") and rotated != secret
    page.get_by_role("button", name="Use in the playground", exact=True).click()
    page.goto(key_page)
    expect(page.locator("#rotations")).not_to_contain_text("never rotated")
    assert rotated not in page.content()

    # The routing tab: one chat policy over the granted model.
    expect(page.locator("#routing")).to_contain_text("Organisation smart routing")
    page.locator("#routing input[name^='order.']").first.fill("1")
    page.fill("#f-chat-maxRetries", "1")
    submit(page, "Save routing")
    expect(page.locator(".notice")).to_contain_text("routing policy was saved")
    expect(page.locator("#routing")).to_contain_text("policy set")
    page.locator("#routing").screenshot(path=os.path.join(SHOTS, "org-apikey-routing.png"))

    visit(page, f"/{ORG}/playground")
    expect(page.locator("#p-why")).to_contain_text("only a hash")
    page.select_option("#p-saved", value=key_page.rsplit("/", 1)[-1])
    assert page.input_value("#p-key") == rotated, "the saved key fills the secret"
    page.select_option("#p-model", "gpt-e2e")
    page.fill("#p-prompt", "Say hello")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#p-output")).to_have_text("Hello world", timeout=15000)
    expect(page.locator("#p-status")).to_have_text("200")
    expect(page.locator("#p-cost")).to_contain_text("$", timeout=20000)
    request_id = page.locator("#p-request").inner_text().strip()
    page.screenshot(path=os.path.join(SHOTS, "org-playground.png"), full_page=True)
    visit(page, f"/{ORG}/usage?requestId={request_id}", shot="org-usage-record")
    expect(page.locator("#records-h + p + .table-wrap")).to_contain_text("gpt-e2e")
    visit(page, f"/{ORG}/dashboard", shot="org-dashboard-after-call")

    visit(page, f"/{ORG}/users")
    page.get_by_text("Invite a user", exact=True).click()
    page.fill("#f-email", cfg["invitee"])
    page.select_option("#f-role", "USER")
    submit(page, "Send invitation")
    link = page.locator("#invite-link").inner_text().strip()
    assert link.startswith("/invitations/"), link
    context.close()

    # The invitation, in a fresh context (no session).
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch(page, "invitee")
    visit(page, link, shot="invitation")
    expect(page.locator("dl.facts")).to_contain_text(cfg["invitee"])
    page.fill("#f-name", "Invited Person")
    page.fill("#f-password", "invited-person-password")
    submit(page, "Accept and sign in")
    assert page.url.endswith(f"/{ORG}/dashboard"), page.url
    context.close()

    # A USER on a phone-sized screen: their pages work, the admin pages are refused.
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    watch(page, "user")
    sign_in(page, cfg["user"]["email"], cfg["user"]["password"])
    for slug in ["dashboard", "apikeys", "usage", "playground", "budgets"]:
        visit(page, f"/{ORG}/{slug}", shot=f"user-390-{slug}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"/{slug} scrolls sideways at 390 px ({width} px wide)"
    # At 390 px the pages sit behind a menu button (a disclosure), reached from the keyboard.
    expect(page.locator("nav.side")).to_be_hidden()
    menu = page.locator("details.menu > summary")
    expect(menu).to_be_visible()
    menu.focus()
    page.keyboard.press("Enter")
    expect(page.locator("details.menu nav")).to_be_visible()
    page.screenshot(path=os.path.join(SHOTS, "user-390-menu.png"), full_page=False)
    with page.expect_navigation():
        page.locator("details.menu").get_by_role("link", name="Usage", exact=True).click()
    assert page.url.endswith(f"/{ORG}/usage"), page.url
    for path in ["/admin/dashboard", "/admin/organisations", f"/{ORG}/providers"]:
        expected_refusals.add(BASE + path)
        visit(page, path, status=403)
    context.close()
    browser.close()

result["problems"] = problems
result["requestId"] = request_id
print(json.dumps(result))
