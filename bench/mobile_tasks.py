"""我的任务 on a slow mobile network: navigation → the task list drawn (body[data-ready]).

Chromium at 390×844 with `Network.emulateNetworkConditions` (≈1.6 Mbps down, 750 kbps up,
150 ms RTT), a field worker's login on the demo street, served by uvicorn against a copy of the
test template. Prints the first visit (nothing cached) and a repeat visit (the service worker and
the hashed, immutable assets in place). Run: `.venv/bin/python -m bench.mobile_tasks`
(needs the test template built: WANGGE_TEST_TEMPLATE, as for the tests).
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
import uuid

import uvicorn
from playwright.sync_api import sync_playwright
from sqlalchemy import create_engine

from api.app import create_app
from api.auth import Role, create_token
from api.settings import Settings, WorkflowSettings
from tests.conftest import TEMPLATE, _admin_url, _roles, as_role, create_database, drop_database
from tests.test_mobile_browser import SLOW_NETWORK
from tests.test_mobile_pages import FIELD_GRID, with_phone_pages

ROUNDS = int(os.environ.get("ROUNDS", "5"))
READY_JS = "() => document.body.dataset.ready === '1'"


def main() -> None:
    admin = _admin_url()
    name = f"wangge_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(admin, name, template=TEMPLATE)
    roles = _roles()
    service = as_role(url, roles[1]) if roles else url
    engine = create_engine(url)
    with engine.begin() as connection:
        secret = create_token(
            connection, name="bench", role=Role.field_staff, grid_codes=(FIELD_GRID,), actor="bench"
        ).secret
    engine.dispose()
    settings = Settings(
        database_url=service, owner_database_url=url, workflow=WorkflowSettings(sweep_seconds=0)
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = with_phone_pages(create_app(settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    first, repeat = [], []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
            )
            for _ in range(ROUNDS):
                context = browser.new_context(viewport={"width": 390, "height": 844})
                context.add_cookies([{"name": "wangge_token", "value": secret, "url": base}])
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Network.enable")
                cdp.send("Network.emulateNetworkConditions", SLOW_NETWORK)
                for times in (first, repeat):
                    started = time.perf_counter()
                    page.goto(base + "/m/", wait_until="commit")
                    page.wait_for_function(READY_JS, timeout=30000)
                    times.append(time.perf_counter() - started)
                    page.wait_for_function("() => window.wgPhone.offlineReady === true")
                context.close()
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        drop_database(admin, name)
    for label, times in (("first visit", first), ("repeat visit", repeat)):
        print(
            f"my tasks interactive, {label}: median {statistics.median(times):.2f} s "
            f"(min {min(times):.2f}, max {max(times):.2f}, {len(times)} runs)"
        )


if __name__ == "__main__":
    main()
