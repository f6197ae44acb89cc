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
from typing import TYPE_CHECKING, Any

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


def _fit(canvas: Canvas, text: str, font: str, size: float, width: float) -> float:
    """The largest size up to ``size`` at which ``text`` fits in ``width``."""
    actual = canvas.stringWidth(text, font, size)
    return size if actual <= width else max(5.0, size * width / actual)


def _line(canvas: Canvas, x: float, y: float, text: str, font: str, size: float) -> None:
    canvas.setFont(font, _fit(canvas, text, font, size, _WIDTH - x - _MARGIN))
    canvas.drawString(x, y, text)


def _rule(canvas: Canvas, y: float) -> None:
    canvas.line(_MARGIN, y, _WIDTH - _MARGIN, y)


def _header(canvas: Canvas, content: LabelContent) -> None:
    top = _HEIGHT - _MARGIN
    canvas.setFont("Helvetica-Bold", 11)
    canvas.drawString(_MARGIN, top - 12, "SANDBOX")
    canvas.setFont("Helvetica", 6)
    canvas.drawString(_MARGIN, top - 21, "fulfil test carrier - not a real label")
    badge = ("RETURN " if content.is_return else "") + content.service.upper()
    canvas.setFont("Helvetica-Bold", 14)
    width = canvas.stringWidth(badge, "Helvetica-Bold", 14) + 12
    canvas.rect(_WIDTH - _MARGIN - width, top - 24, width, 24, stroke=0, fill=1)
    canvas.setFillGray(1)
    canvas.drawString(_WIDTH - _MARGIN - width + 6, top - 18, badge)
    canvas.setFillGray(0)
    _rule(canvas, top - 30)


def _sender(canvas: Canvas, address: Address, y: float) -> float:
    canvas.setFont("Helvetica-Bold", 7)
    canvas.drawString(_MARGIN, y, "FROM")
    y -= 10
    _line(canvas, _MARGIN, y, _printable(address.name), "Helvetica-Bold", 8)
    for text in _address_lines(address):
        y -= 9
        _line(canvas, _MARGIN, y, text, "Helvetica", 8)
    y -= 9
    city = f"{address.postal_code} {address.city}  {address.country}"
    _line(canvas, _MARGIN, y, _printable(city), "Helvetica", 8)
    return y - 8


def _recipient(canvas: Canvas, address: Address, y: float) -> float:
    canvas.setFont("Helvetica-Bold", 8)
    canvas.drawString(_MARGIN, y, "SHIP TO")
    x = _MARGIN + 10
    y -= 18
    _line(canvas, x, y, _printable(address.name), "Helvetica-Bold", 15)
    for text in _address_lines(address):
        y -= 14
        _line(canvas, x, y, text, "Helvetica", 11)
    y -= 17
    _line(canvas, x, y, _printable(f"{address.postal_code} {address.city}"), "Helvetica-Bold", 14)
    if address.region:
        y -= 14
        _line(canvas, x, y, _printable(address.region), "Helvetica", 11)
    y -= 17
    _line(canvas, x, y, address.country, "Helvetica-Bold", 14)
    return y - 10


def _details(canvas: Canvas, content: LabelContent, index: int, y: float) -> float:
    weight_kg = content.weights_g[index] / 1000
    count = len(content.weights_g)
    canvas.setFont("Helvetica", 8)
    canvas.drawString(_MARGIN, y, f"Order #{content.order_number}")
    canvas.drawString(_MARGIN + 90, y, f"Weight {weight_kg:.3f} kg")
    canvas.drawString(_MARGIN + 180, y, f"Parcel {index + 1}/{count}")
    y -= 10
    canvas.drawString(_MARGIN, y, f"Service {content.service}")
    canvas.drawString(_MARGIN + 90, y, f"Date {content.created_on}")
    if content.customs_lines:
        canvas.drawString(_MARGIN + 180, y, f"Customs: {content.customs_lines} lines")
    return y - 8


def _sort_code(canvas: Canvas, recipient: Address, y: float) -> None:
    # A big destination code, as hubs sort by it at a glance: country + postal prefix.
    code = _printable(f"{recipient.country} {recipient.postal_code[:3]}")
    canvas.setFont("Helvetica-Bold", 30)
    canvas.drawCentredString(_WIDTH / 2, y - 34, code)


def _barcode(tracking_number: str) -> Any:
    from reportlab.graphics.barcode.code128 import Code128

    available = _WIDTH - 2 * _MARGIN - 20  # Code128 needs a quiet zone on both sides
    probe = Code128(tracking_number, barWidth=1.0, humanReadable=False, quiet=False)
    bar_width = min(1.6, available / probe.width)
    return Code128(
        tracking_number, barWidth=bar_width, barHeight=62, humanReadable=False, quiet=False
    )


def _tracking(canvas: Canvas, barcode: Any, tracking_number: str) -> None:
    barcode.drawOn(canvas, (_WIDTH - barcode.width) / 2, _MARGIN + 26)
    canvas.setFont("Helvetica-Bold", 13)
    canvas.drawCentredString(_WIDTH / 2, _MARGIN + 8, tracking_number)


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
        _header(canvas, content)
        y = _sender(canvas, content.sender, _HEIGHT - _MARGIN - 42)
        _rule(canvas, y)
        y = _recipient(canvas, content.recipient, y - 12)
        _rule(canvas, y)
        y = _details(canvas, content, index, y - 12)
        _rule(canvas, y)
        _sort_code(canvas, content.recipient, y)
        _tracking(canvas, barcode, content.tracking_number)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
