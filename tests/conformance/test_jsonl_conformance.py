"""The JSON-lines SMS and push sinks pass the notifier conformance suite, each on its own.

Their "fake" is the file: a delivery is a line. The one fault a local file can meet is
its folder being unusable, which must be transient.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fulfil.plugins.notifiers import jsonl
from fulfil.testing.conformance import NotifierConformance


class LinesView:
    def __init__(self, path: Path) -> None:
        self.path = path

    def deliveries(self) -> int:
        if not self.path.exists():
            return 0
        return len(self.path.read_text(encoding="utf-8").splitlines())


class JsonlConformance(NotifierConformance):
    file_name = "messages.jsonl"

    @pytest.fixture
    def plugin(self) -> ModuleType:
        return jsonl

    @pytest.fixture
    def fake(self, tmp_path: Path) -> LinesView:
        return LinesView(tmp_path / "logs" / self.file_name)

    @pytest.fixture
    def settings(self, fake: LinesView) -> dict[str, Any]:
        return {"path": str(fake.path)}

    def provoke(self, fault: str, fake: Any, settings: Mapping[str, Any]) -> Mapping[str, Any]:
        if fault != "unavailable":
            pytest.skip(f"a local file has no {fault}")
        blocker = Path(settings["path"]).parent.parent / "not-a-folder"
        blocker.write_text("a file where the log's folder should be")
        return {**settings, "path": str(blocker / self.file_name)}


class TestSmsLogConformance(JsonlConformance):
    notifier_name = "sms_log"
    file_name = "sms.jsonl"


class TestPushLogConformance(JsonlConformance):
    notifier_name = "push_log"
    file_name = "push.jsonl"
