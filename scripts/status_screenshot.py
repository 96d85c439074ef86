"""Render `serve`'s status page in headless Chromium (Debian's `chromium` package) and save
a screenshot, after a demo cycle with some simulated activity.

    .venv/bin/python scripts/status_screenshot.py [--out docs/status-page.png]

Prints what the browser rendered (the page's section headings) so a person or CI can see the
page really works in a browser, not only over HTTP.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Flags for Chromium on a closed network, run as root (see the machine notes in README).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
BROWSER_TIMEOUT_SECONDS = 60


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browse(url: str, out: Path | None, profile: Path) -> str:
    """The DOM Chromium rendered for ``url``; also a PNG at ``out`` when given."""
    exe = chromium()
    if exe is None:
        raise SystemExit("Chromium not found: apt-get install chromium")
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=BROWSER_TIMEOUT_SECONDS, check=True).stdout
    if out is not None:
        subprocess.run([*base, f"--screenshot={out}", "--window-size=1280,1500", url],
                       capture_output=True, timeout=BROWSER_TIMEOUT_SECONDS, check=True)
    return dom


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
                             webhook_token="demo-token-" + "x" * 20,
                             sync_interval_seconds=3600, rules_interval_seconds=3600)
    db = Database(settings.database_url)
    db.upgrade()
    runtime = ActionRuntime(settings)
    run_sync(settings, db, full=True,
             clients=long_lived_clients(runtime, configured_sources(settings)))
    run_cycle(settings, db, runtime=runtime)
    simulator = StaffSimulator(box, seed=5)
    for _ in range(15):
        simulator.step()
    service = Service(settings, db, port=port).start()
    try:
        service.sync_job_now()
        time.sleep(0.5)
        dom = browse(f"http://127.0.0.1:{port}/", args.out, work / "profile")
    finally:
        service.shutdown()
        runtime.close()
        server.stop()
    headings = re.findall(r"<h[12]>(.*?)</h[12]>", dom)
    print("Chromium rendered:", " | ".join(headings))
    print(f"screenshot: {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
