"""Render `serve`'s status page in headless Chromium (Debian's `chromium` package) and save
a screenshot, after a demo cycle with some simulated activity.

    .venv/bin/python scripts/status_screenshot.py [--out docs/status-page.png]

Prints what the browser rendered (the page's section headings) so a person or CI can see the
page really works in a browser, not only over HTTP.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Flags for Chromium on a closed network, run as root (see the machine notes in README).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
BROWSER_TIMEOUT_SECONDS = 60
WINDOW = "1280,2300"  # the whole page of the demo's world, KPIs to quotas
STATUS_TOKEN = "pantalla-" + "x" * 24


APT_TIMEOUT_SECONDS = 900  # Chromium and its libraries: ~100 MB from the Debian mirror


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure_chromium() -> tuple[str | None, str]:
    """Chromium's path, installing Debian's package first when it is missing and this runs
    as root with apt (the test set-up and CI); else None and why it could not be."""
    found = chromium()
    if found:
        return found, ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "Chromium no está instalado y no se puede instalar aquí (hace falta root " \
                     "y apt-get): apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    result = subprocess.run(install, capture_output=True, text=True, env=env,
                            timeout=APT_TIMEOUT_SECONDS, check=False)
    if result.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update"], capture_output=True, env=env,
                       timeout=APT_TIMEOUT_SECONDS, check=False)
        result = subprocess.run(install, capture_output=True, text=True, env=env,
                                timeout=APT_TIMEOUT_SECONDS, check=False)
    found = chromium()
    return found, "" if found else ("apt-get install chromium falló: "
                                    + (result.stderr or result.stdout)[-300:])


def browse(url: str, out: Path | None, profile: Path) -> str:
    """The DOM Chromium rendered for ``url``; also a PNG at ``out`` when given."""
    exe, why = ensure_chromium()
    if exe is None:
        raise SystemExit(why)
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=BROWSER_TIMEOUT_SECONDS, check=True).stdout
    if out is not None:
        subprocess.run([*base, f"--screenshot={out}", f"--window-size={WINDOW}", url],
                       capture_output=True, timeout=BROWSER_TIMEOUT_SECONDS, check=True)
    return dom


def dying_delivery(box: Any, db: Any) -> None:
    """A stored Podio delivery on its last attempt whose item keeps answering 500: the
    worker parks it dead, and the page says why."""
    from jobs.inbox import MAX_ATTEMPTS
    from store.db import utcnow
    from store.models import WebhookInbox

    item = box.tools["podio"].items("tickets")[0]
    box.faults.add(kind="status", tool="podio", method="GET", path=f"^/item/{item}$",
                   status=500, count=10_000)
    with db.session() as s:
        s.add(WebhookInbox(source="podio", delivery_key="pantalla:1", status="pending",
                           event_type="item.update", received_at=utcnow(),
                           attempts=MAX_ATTEMPTS - 1,
                           payload={"type": "item.update", "hook_id": "1",
                                    "item_id": str(item)}))


def main() -> None:
    from connectors.clients import ActionRuntime
    from core.settings import load_settings
    from jobs.cycle import configured_sources, long_lived_clients, run_sync
    from jobs.service import Service
    from rules.engine import run_cycle
    from sandbox.activity import StaffSimulator
    from sandbox.server import Sandbox, SandboxServer
    from store.db import Database

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "status-page.png")
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="saeko-status-"))
    box = Sandbox(clients=args.clients, seed=7)
    server = SandboxServer(box).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k.lower(): v for k, v in box.env().items()}
    settings = load_settings(**env, database_url=f"sqlite:///{work}/status.db",
                             webhook_token="demo-token-" + "x" * 20, status_token=STATUS_TOKEN,
                             sync_interval_seconds=300, rules_interval_seconds=3600,
                             podio_retry_base_seconds=0.01, podio_max_retry_seconds=1)
    db = Database(settings.database_url)
    db.upgrade()
    runtime = ActionRuntime(settings)
    run_sync(settings, db, full=True,
             clients=long_lived_clients(runtime, configured_sources(settings)))
    run_cycle(settings, db, runtime=runtime)
    simulator = StaffSimulator(box, seed=5)
    for _ in range(15):
        simulator.step()
    dying_delivery(box, db)
    service = Service(settings, db, port=port).start()
    try:
        service.sync_job_now()
        time.sleep(1.0)
        dom = browse(f"http://127.0.0.1:{port}/?token={STATUS_TOKEN}", args.out,
                     work / "profile")
    finally:
        service.shutdown()
        runtime.close()
        server.stop()
    headings = re.findall(r"<h[12]>(.*?)</h[12]>", dom)
    print("Chromium rendered:", " | ".join(headings))
    print(f"screenshot: {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
