"""JSON-lines sinks for SMS and push: one JSON object per message, appended to a file.

Two notifiers, ``sms_log`` (channel ``sms``) and ``push_log`` (channel ``push``), each with
one setting, ``path`` (defaults ``sms.jsonl`` and ``push.jsonl``, relative to the plugin's
data folder). Each line holds ``dedupe_key``, ``channel``, ``to``, ``subject``, ``text``,
``order_id``, ``event``, ``audience`` and ``sent_at`` (UTC, ISO 8601).

A message is logged once per ``dedupe_key``, however many processes share the file: a
writer holds an exclusive ``flock`` while it checks and appends. Each notifier remembers
the keys it has read and where it stopped, so a send reads only the lines appended since.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from fulfil.core import hookimpl
from fulfil.core.context import PluginContext
from fulfil.core.errors import NotifierError
from fulfil.core.notifiers import Channel, Message, NotifierPlugin, Receipt

__all__ = ["JsonlNotifier", "settings_schema"]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def settings_schema(name: str, default_path: str) -> Mapping[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": name,
        "description": f"Append every {name.split('_')[0]} message to a JSON-lines file.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "default": default_path,
                "description": "The JSON-lines file; a relative path is resolved against the "
                "data folder.",
            }
        },
    }


class JsonlNotifier:
    """Appends messages to ``path``, at most once per dedupe key."""

    def __init__(self, path: Path, channel: Channel | str, name: str = "jsonl") -> None:
        self.path = path
        self.channel = Channel(channel)
        self.name = name
        self._seen: dict[str, int] = {}  # dedupe key -> line number
        self._file_id: tuple[int, int] | None = None
        self._offset = 0  # bytes of complete lines already read
        self._lines = 0
        self._thread_lock = threading.Lock()

    def send(self, message: Message) -> Receipt:
        self._check_recipient(message.to)
        record = {
            "dedupe_key": message.dedupe_key,
            "channel": self.channel.value,
            "to": message.to,
            "subject": message.subject,
            "text": message.text,
            "order_id": message.order_id,
            "event": message.event,
            "audience": message.audience.value,
            "sent_at": datetime.now(UTC).isoformat(),
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._thread_lock, open(self.path, "a+b") as file:
                fcntl.flock(file, fcntl.LOCK_EX)  # released when the file is closed
                self._catch_up(file)
                if message.dedupe_key in self._seen:
                    return self._receipt(message.dedupe_key, "already logged")
                file.seek(0, os.SEEK_END)
                if file.tell() > self._offset:  # a line torn by a crashed writer: end it
                    file.write(b"\n")
                    self._lines += 1
                file.write(line)
                file.flush()
                os.fsync(file.fileno())
                self._offset = file.tell()
                self._lines += 1
                self._seen[message.dedupe_key] = self._lines
                return self._receipt(message.dedupe_key, str(self.path))
        except OSError as exc:
            raise NotifierError(
                self.name, f"{self.path}: {exc.strerror or exc}", transient=True
            ) from exc

    def _check_recipient(self, to: str) -> None:
        if self.channel is Channel.SMS and not _E164.match(to):
            raise NotifierError(self.name, f"not an E.164 phone number: {to!r}", transient=False)
        if not to.strip():
            raise NotifierError(self.name, "no recipient", transient=False)

    def _catch_up(self, file: IO[bytes]) -> None:
        """Read the lines other writers appended since the last send."""
        stat = os.fstat(file.fileno())
        if (stat.st_dev, stat.st_ino) != self._file_id or stat.st_size < self._offset:
            self._file_id = (stat.st_dev, stat.st_ino)  # a new or truncated file
            self._seen.clear()
            self._offset = self._lines = 0
        file.seek(self._offset)
        for raw in file:
            if not raw.endswith(b"\n"):
                break
            self._offset += len(raw)
            self._lines += 1
            try:
                key = json.loads(raw)["dedupe_key"]
            except (ValueError, KeyError, TypeError):
                continue
            self._seen.setdefault(key, self._lines)

    def _receipt(self, key: str, detail: str) -> Receipt:
        return Receipt(provider_id=f"{self.path.name}:{self._seen[key]}", detail=detail)


def _factory(
    name: str, channel: Channel, default_path: str
) -> Callable[[Mapping[str, Any], PluginContext], JsonlNotifier]:
    def factory(settings: Mapping[str, Any], context: PluginContext) -> JsonlNotifier:
        return JsonlNotifier(context.path(settings.get("path", default_path)), channel, name)

    return factory


_SINKS = (("sms_log", Channel.SMS, "sms.jsonl"), ("push_log", Channel.PUSH, "push.jsonl"))


@hookimpl
def fulfil_register_notifiers(register: Callable[[NotifierPlugin], None]) -> None:
    for name, channel, default_path in _SINKS:
        register(
            NotifierPlugin(
                name=name,
                channel=channel,
                factory=_factory(name, channel, default_path),
                settings_schema=settings_schema(name, default_path),
                description=f"Appends {channel.value} messages to a JSON-lines file "
                f"({default_path}).",
            )
        )
