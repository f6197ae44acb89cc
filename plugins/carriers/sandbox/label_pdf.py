"""The sandbox's shipping label: a real 4x6 inch PDF, one page per parcel.

It carries what a courier's scanner and a warehouse worker need (sender, recipient,
service, order number, weight, tracking number as text and as a Code128 barcode) so the
demo's output looks and prints like the real thing. ``invariant`` mode pins reportlab's
timestamps and document id: the same ``LabelContent`` always gives the same bytes, which
is what lets the ledger keep the content rather than the document.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
from fulfil.core.models import Address

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

__all__ = ["PAGE_SIZE", "LabelContent", "render_label"]

PAGE_SIZE = (288.0, 432.0)  # 4 x 6 inches in points
_MARGIN = 12.0
_WIDTH, _HEIGHT = PAGE_SIZE

# Letters the standard PDF fonts cannot draw and NFKD does not decompose.
_FOLD = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ı": "i", "Ħ": "H", "ħ": "h"})


@attrs.frozen
class LabelContent:
    """What is printed. ``sender``/``recipient`` are as the parcel travels (swapped for
    a return label)."""

    tracking_number: str
    service: str
    order_number: int
    sender: Address
    recipient: Address
    weights_g: tuple[int, ...]
    created_on: str  # ISO date the label was bought
    is_return: bool = False
    customs_lines: int = 0

    def to_mapping(self) -> dict[str, Any]:
        return {
            "tracking_number": self.tracking_number,
            "service": self.service,
            "order_number": self.order_number,
            "sender": self.sender.to_mapping(),
            "recipient": self.recipient.to_mapping(),
            "weights_g": list(self.weights_g),
            "created_on": self.created_on,
            "is_return": self.is_return,
            "customs_lines": self.customs_lines,
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LabelContent:
        return cls(
            tracking_number=data["tracking_number"],
            service=data["service"],
            order_number=int(data["order_number"]),
            sender=Address.from_mapping(data["sender"]),
            recipient=Address.from_mapping(data["recipient"]),
            weights_g=tuple(int(w) for w in data["weights_g"]),
            created_on=data["created_on"],
            is_return=bool(data.get("is_return", False)),
            customs_lines=int(data.get("customs_lines", 0)),
        )


def _printable(text: str) -> str:
    """Fold ``text`` into what Helvetica (WinAnsi) can draw: é stays, Ł becomes L, and
    scripts it has no glyphs for become ``?`` rather than black boxes."""
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for char in text.translate(_FOLD):
        try:
            char.encode("cp1252")
            out.append(char)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char)
            base = "".join(c for c in base if not unicodedata.combining(c))
            out.append(base if base and base.isascii() else "?")
    return "".join(out)


def _address_lines(address: Address) -> list[str]:
    lines = [address.company, address.line1, address.line2]
    return [_printable(line) for line in lines if line]


class _PageText:
    """All of a page's text as one PDF text object.

    ``Canvas.drawString`` builds a text object per string and ``Canvas.setFont`` writes
    one more each time. Here the font is set only when it changes and every string is one
    ``Tm``/``Tj`` pair: a label's twenty-odd strings take about 30% less time to draw.
    The object is drawn after the page's shapes, which is what puts the service badge's
    white letters on top of its black box."""

    def __init__(self, canvas: Canvas) -> None:
        self._canvas = canvas
        self._text = canvas.beginText()
        self._font: tuple[str, float] | None = None

    def width(self, text: str, font: str, size: float) -> float:
        width: float = self._canvas.stringWidth(text, font, size)
        return width

    def draw(self, x: float, y: float, text: str, font: str, size: float) -> None:
        if self._font != (font, size):
            self._text.setFont(font, size)
            self._font = (font, size)
        self._text.setTextOrigin(x, y)
        self._text.textLine(text)

    def centred(self, y: float, text: str, font: str, size: float) -> None:
        self.draw((_WIDTH - self.width(text, font, size)) / 2, y, text, font, size)

    def fitted(self, x: float, y: float, text: str, font: str, size: float) -> None:
        """``text`` at the largest size up to ``size`` that fits between ``x`` and the
        right margin."""
        actual = self.width(text, font, size)
        available = _WIDTH - x - _MARGIN
        if actual > available:
            size = max(5.0, size * available / actual)
        self.draw(x, y, text, font, size)

    def gray(self, level: float) -> None:
        self._text.setFillGray(level)

    def finish(self) -> None:
        self._canvas.drawText(self._text)


def _rule(canvas: Canvas, y: float) -> None:
    canvas.line(_MARGIN, y, _WIDTH - _MARGIN, y)


def _header(canvas: Canvas, text: _PageText, content: LabelContent) -> None:
    top = _HEIGHT - _MARGIN
    text.draw(_MARGIN, top - 12, "SANDBOX", "Helvetica-Bold", 11)
    text.draw(_MARGIN, top - 21, "fulfil test carrier - not a real label", "Helvetica", 6)
    badge = ("RETURN " if content.is_return else "") + content.service.upper()
    width = text.width(badge, "Helvetica-Bold", 14) + 12
    canvas.rect(_WIDTH - _MARGIN - width, top - 24, width, 24, stroke=0, fill=1)
    text.gray(1)
    text.draw(_WIDTH - _MARGIN - width + 6, top - 18, badge, "Helvetica-Bold", 14)
    text.gray(0)
    _rule(canvas, top - 30)


def _sender(text: _PageText, address: Address, y: float) -> float:
    text.draw(_MARGIN, y, "FROM", "Helvetica-Bold", 7)
    y -= 10
    text.fitted(_MARGIN, y, _printable(address.name), "Helvetica-Bold", 8)
    for line in _address_lines(address):
        y -= 9
        text.fitted(_MARGIN, y, line, "Helvetica", 8)
    y -= 9
    city = f"{address.postal_code} {address.city}  {address.country}"
    text.fitted(_MARGIN, y, _printable(city), "Helvetica", 8)
    return y - 8


def _recipient(text: _PageText, address: Address, y: float) -> float:
    text.draw(_MARGIN, y, "SHIP TO", "Helvetica-Bold", 8)
    x = _MARGIN + 10
    y -= 18
    text.fitted(x, y, _printable(address.name), "Helvetica-Bold", 15)
    for line in _address_lines(address):
        y -= 14
        text.fitted(x, y, line, "Helvetica", 11)
    y -= 17
    city = _printable(f"{address.postal_code} {address.city}")
    text.fitted(x, y, city, "Helvetica-Bold", 14)
    if address.region:
        y -= 14
        text.fitted(x, y, _printable(address.region), "Helvetica", 11)
    y -= 17
    text.fitted(x, y, address.country, "Helvetica-Bold", 14)
    return y - 10


def _details(text: _PageText, content: LabelContent, index: int, y: float) -> float:
    weight_kg = content.weights_g[index] / 1000
    count = len(content.weights_g)
    text.draw(_MARGIN, y, f"Order #{content.order_number}", "Helvetica", 8)
    text.draw(_MARGIN + 90, y, f"Weight {weight_kg:.3f} kg", "Helvetica", 8)
    text.draw(_MARGIN + 180, y, f"Parcel {index + 1}/{count}", "Helvetica", 8)
    y -= 10
    text.draw(_MARGIN, y, f"Service {content.service}", "Helvetica", 8)
    text.draw(_MARGIN + 90, y, f"Date {content.created_on}", "Helvetica", 8)
    if content.customs_lines:
        text.draw(_MARGIN + 180, y, f"Customs: {content.customs_lines} lines", "Helvetica", 8)
    return y - 8


def _sort_code(text: _PageText, recipient: Address, y: float) -> None:
    # A big destination code, as hubs sort by it at a glance: country + postal prefix.
    code = _printable(f"{recipient.country} {recipient.postal_code[:3]}")
    text.centred(y - 34, code, "Helvetica-Bold", 30)


class _Barcode(NamedTuple):
    widget: Any  # reportlab's Code128
    width: float


def _barcode(tracking_number: str) -> _Barcode:
    """The tracking number's Code128 symbol, as wide as the label allows (up to 1.6 pt a
    module), without its human-readable line: the label prints that itself.

    The widget encodes the number again whenever its size is asked for, so it is measured
    once, at one point a module (its width is then the module count), and resized by
    setting ``barWidth`` rather than built twice."""
    from reportlab.graphics.barcode.code128 import Code128

    available = _WIDTH - 2 * _MARGIN - 20  # Code128 needs a quiet zone on both sides
    widget = Code128(tracking_number, barWidth=1.0, barHeight=62, humanReadable=False, quiet=False)
    modules = widget.width
    widget.barWidth = min(1.6, available / modules)
    return _Barcode(widget, modules * widget.barWidth)


def _tracking(canvas: Canvas, text: _PageText, barcode: _Barcode, tracking_number: str) -> None:
    barcode.widget.drawOn(canvas, (_WIDTH - barcode.width) / 2, _MARGIN + 26)
    text.centred(_MARGIN + 8, tracking_number, "Helvetica-Bold", 13)


def _page(canvas: Canvas, content: LabelContent, index: int, barcode: _Barcode) -> None:
    text = _PageText(canvas)
    _header(canvas, text, content)
    y = _sender(text, content.sender, _HEIGHT - _MARGIN - 42)
    _rule(canvas, y)
    y = _recipient(text, content.recipient, y - 12)
    _rule(canvas, y)
    y = _details(text, content, index, y - 12)
    _rule(canvas, y)
    _sort_code(text, content.recipient, y)
    _tracking(canvas, text, barcode, content.tracking_number)
    text.finish()


def render_label(content: LabelContent) -> bytes:
    """The label as PDF bytes: one 288x432 pt page per parcel."""
    # Imported here: reportlab is only needed when a label is drawn, not to list plugins.
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    # Uncompressed pages: about 15% faster and a label is only a few kilobytes anyway.
    canvas = Canvas(buffer, pagesize=PAGE_SIZE, pageCompression=0, invariant=1)
    canvas.setTitle(f"Label {content.tracking_number}")
    canvas.setAuthor("fulfil sandbox carrier")
    barcode = _barcode(content.tracking_number)
    for index in range(len(content.weights_g)):
        _page(canvas, content, index, barcode)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
