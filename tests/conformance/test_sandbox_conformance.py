"""The built-in sandbox carrier passes the carrier conformance suite.

The sandbox has no HTTP service behind it: its "fake" is its own ledger (what it sold),
and faults are provoked through its fault settings instead of a scripted server.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fulfil.plugins.carriers import sandbox
from fulfil.plugins.carriers.sandbox import Ledger
from fulfil.testing.conformance import RETRY_AFTER, CarrierConformance


class LedgerView:
    """The sandbox's side of the wire: how many labels it sold."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def sales(self) -> int:
        ledger = Ledger(self.path)
        try:
            return len(ledger.purchases())
        finally:
            ledger.close()


# The sandbox's faults, as settings: each hits every request, which the suite allows
# because it builds the carrier it retries with from the healthy settings.
FAULT_SETTINGS = {
    "rate_limited": {"fail_429": 1, "retry_after_s": RETRY_AFTER},
    "unavailable": {"fail_5xx": 1},
    "timeout_after_receipt": {"fail_timeout": 1},
}


class TestSandboxConformance(CarrierConformance):
    @pytest.fixture
    def plugin(self) -> ModuleType:
        return sandbox

    @pytest.fixture
    def fake(self, tmp_path: Path) -> LedgerView:
        return LedgerView(tmp_path / "sandbox-ledger.sqlite")

    @pytest.fixture
    def settings(self, fake: LedgerView) -> dict[str, Any]:
        return {"ledger": str(fake.path)}

    def provoke(self, fault: str, fake: Any, settings: Mapping[str, Any]) -> Mapping[str, Any]:
        if fault not in FAULT_SETTINGS:
            pytest.skip(f"the sandbox cannot time out before it looked at a request ({fault})")
        return {**settings, **FAULT_SETTINGS[fault]}
