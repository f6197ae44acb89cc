"""SIGKILL a worker in the middle of a batch; the next one finishes the job exactly once.

Proved from the sandbox ledger (labels sold) and the Maildir (messages delivered).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from conftest import order_data, read_maildir
from fulfil.plugins.carriers.sandbox.ledger import Ledger

ORDERS = 40


def fulfil(config, *args, output=subprocess.DEVNULL):
    return subprocess.Popen(
        [sys.executable, "-m", "fulfil.core.cli", "--config", str(config), *args],
        stdout=output,
        stderr=output,
    )


def test_killed_worker_loses_nothing_and_repeats_nothing(write_config, tmp_path):
    config = write_config(
        {
            "carriers": {"sandbox": {"settings": {"latency_ms": 40}}},
            "worker": {"lease_seconds": 2, "batch_size": 8, "concurrency": 4},
        }
    )
    orders = tmp_path / "orders.json"
    orders.write_text(
        json.dumps([order_data(5000 + n, locale="fr" if n % 2 else "en") for n in range(ORDERS)])
    )
    assert fulfil(config, "import", str(orders)).wait() == 0
    ids = [f"ord_{5000 + n}" for n in range(ORDERS)]
    assert fulfil(config, "pay", *ids).wait() == 0

    ledger = Ledger(tmp_path / "sandbox-ledger.sqlite")
    first = fulfil(config, "worker", "--until-idle")
    deadline = time.monotonic() + 60
    while len(ledger.purchases()) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # mid-batch: some calls in flight, some rows leased
    first.wait()
    done_before = len(ledger.purchases())
    assert 0 < done_before < ORDERS

    second = fulfil(config, "worker", "--until-idle", output=subprocess.PIPE)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err.decode()

    per_shipment = ledger.purchases_per_shipment()
    assert len(per_shipment) == ORDERS and set(per_shipment.values()) == {1}
    keys = Counter(m["X-Fulfil-Dedupe-Key"] for m in read_maildir(tmp_path / "mail"))
    assert keys and set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1]
    # Every order: its confirmation, the merchant's new-order mail, and the shipped mail.
    assert len(keys) == 3 * ORDERS
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "fulfil.core.cli",
            "--config",
            str(config),
            "orders",
            "list",
            "--json",
        ],
        capture_output=True,
        check=True,
    )
    assert {o["fulfilment_status"] for o in json.loads(status.stdout)} == {"SHIPPED"}
