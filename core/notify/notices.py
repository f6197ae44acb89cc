"""The two small values the notification hooks pass around."""

from __future__ import annotations

import attrs
from fulfil.core.notifiers import Audience, Channel

__all__ = ["Notice", "Rendered"]


@attrs.frozen
class Notice:
    """One message an event causes: which template, for whom, on which channel."""

    template: str  # e.g. "order_placed", "order_shipped", "merchant_new_order"
    audience: Audience = attrs.field(converter=Audience)
    channel: Channel = attrs.field(converter=Channel)


@attrs.frozen
class Rendered:
    subject: str
    text: str
    html: str | None = None
