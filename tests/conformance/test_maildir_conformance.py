"""The Maildir email sink passes the notifier conformance suite.

Its "fake" is the Maildir itself: a delivery is a file in ``new/`` or ``cur/``. The one
fault a local folder can meet is the folder being unusable, which must be transient.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fulfil.plugins.notifiers import maildir
from fulfil.testing.conformance import NotifierConformance


class MaildirView:
    def __init__(self, path: Path) -> None:
        self.path = path

    def deliveries(self) -> int:
        return sum(len(list((self.path / sub).glob("*"))) for sub in ("new", "cur"))


class TestMaildirConformance(NotifierConformance):
    @pytest.fixture
    def plugin(self) -> ModuleType:
        return maildir

    @pytest.fixture
    def fake(self, tmp_path: Path) -> MaildirView:
        return MaildirView(tmp_path / "mail")

    @pytest.fixture
    def settings(self, fake: MaildirView) -> dict[str, Any]:
        return {"path": str(fake.path), "from": "Demo Store <shop@demo-store.example>"}

    def provoke(self, fault: str, fake: Any, settings: Mapping[str, Any]) -> Mapping[str, Any]:
        if fault != "unavailable":
            pytest.skip(f"a local Maildir has no {fault}")
        blocker = Path(settings["path"]).parent / "not-a-folder"
        blocker.write_text("a file where the Maildir's parent should be")
        return {**settings, "path": str(blocker / "mail")}
