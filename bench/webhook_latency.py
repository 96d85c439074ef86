"""Latency of a webhook-triggered automation: a ticket created in Podio -> T1's fields
written back by `serve` (SPEC §9 target: p95 under 1 s on the sandbox).

    .venv/bin/python bench/webhook_latency.py [--tickets 40] [--clients 20] [--under-pressure]

``--under-pressure`` sets ``WEBHOOK_BATCH_ABOVE=0`` (as past 20 % of Podio's quota in a busy
hour): each new ticket is then read by its app's filter (``jobs/inbox.py``) instead of a GET.

Starts the sandbox and `serve` in this process (real HTTP both ways: Podio's hook delivery
to the service, the service's calls to Podio), creates tickets the way a user does (title
and user only), and times each until the sandbox shows the auto-filled `escuela` field.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

POLL_SECONDS = 0.005
GIVE_UP_SECONDS = 10.0


def main() -> None:
    from core.logging import configure_logging
    from core.settings import load_settings
    from jobs.hooks import register_hooks
    from jobs.service import Service
    from sandbox.server import Sandbox, SandboxServer
    from sandbox.world import podio_item_id
    from store.db import Database

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--field", default="escuela", help="the field T1 fills")
    parser.add_argument("--under-pressure", action="store_true",
                        help="gather webhooks as under quota pressure (WEBHOOK_BATCH_ABOVE=0)")
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    box = Sandbox(clients=args.clients, seed=7)
    server = SandboxServer(box).start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="saeko-latency-"))
    env = {k.lower(): v for k, v in box.env().items()}
    settings = load_settings(**env, database_url=f"sqlite:///{work}/latency.db",
                             webhook_token="bench-token-" + "x" * 20,
                             public_url=f"http://127.0.0.1:{port}",
                             sync_interval_seconds=3600, rules_interval_seconds=3600,
                             **({"webhook_batch_above": 0} if args.under_pressure else {}))
    db = Database(settings.database_url)
    service = Service(settings, db, port=port).start()
    podio = box.tools["podio"]
    latencies: list[float] = []
    missed = 0
    try:
        service.sync_job_now()  # the first full sync and rule cycle
        register_hooks(settings, service.runtime)
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while not all(h["status"] == "active" for h in podio.hooks()):
            if time.monotonic() > deadline:
                raise SystemExit("hooks were not verified")
            time.sleep(0.05)
        users = box.world.users
        for n in range(args.tickets):
            user = users[n % len(users)]
            started = time.perf_counter()
            item = podio.create_item_as("agente-1@saeko.test", "tickets", {
                "titulo": "No carga la boleta", "usuario": [podio_item_id("usuarios", user.key)],
                "email-reportante": user.email, "estatus": "Nuevo"})
            while args.field not in podio.values(item):
                if time.perf_counter() - started > GIVE_UP_SECONDS:
                    missed += 1
                    break
                time.sleep(POLL_SECONDS)
            else:
                latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
    finally:
        service.shutdown()
        server.stop()
    if not latencies:
        raise SystemExit(f"no ticket got {args.field!r} within {GIVE_UP_SECONDS} s: is T1 on?")
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    reads = box.calls.snapshot("podio")["podio"]
    print(f"tickets: {len(latencies)} completed, {missed} not within {GIVE_UP_SECONDS} s; "
          f"{'under quota pressure' if args.under_pressure else 'no quota pressure'}: Podio "
          f"GET /item {reads.get('GET /item/{item_id:int}', 0)}, filter calls "
          f"{sum(n for endpoint, n in reads.items() if '/filter' in endpoint)}")
    print(f"creation -> '{args.field}' written back: p50 {statistics.median(ordered)*1000:.0f} ms,"
          f" p95 {p95*1000:.0f} ms, max {ordered[-1]*1000:.0f} ms (target p95 < 1000 ms)")


if __name__ == "__main__":
    main()
