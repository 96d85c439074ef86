"""The report as a PDF (fpdf2): the same figures, charts and accounts as the email, A4,
DejaVu Sans from matplotlib's bundled fonts (it has every Spanish letter and ≥ ≤ — on any
machine). Fixed creation date, so the same report gives the same bytes."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
from fpdf import FPDF
from PIL import Image

FONT = "DejaVu"
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
PAGE_WIDTH_MM = 180  # A4 (210 mm) minus 15 mm margins


def _pdf() -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, 15)
    pdf.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))
    pdf.add_page()
    return pdf


def document(title: str, subtitle: str, sections: list[dict[str, Any]]) -> bytes:
    """A PDF of ``sections``: each ``{"titulo", "tabla": (header, rows, widths)}`` (a cell
    may be ``(text, link)``),
    ``{"titulo", "imagen": png bytes}`` or ``{"titulo", "texto"}``; every cell is text
    already formatted for the reader."""
    pdf = _pdf()
    pdf.set_title(title)
    pdf.set_font(FONT, "B", 15)
    pdf.multi_cell(PAGE_WIDTH_MM, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 10)
    pdf.multi_cell(PAGE_WIDTH_MM, 6, subtitle, new_x="LMARGIN", new_y="NEXT")
    for section in sections:
        pdf.ln(3)
        if "imagen" in section:  # keep a chart with its heading on one page
            with Image.open(io.BytesIO(section["imagen"])) as png:
                height = PAGE_WIDTH_MM * png.height / png.width
            if pdf.get_y() + 8 + height > pdf.h - pdf.b_margin:
                pdf.add_page()
        pdf.set_font(FONT, "B", 12)
        pdf.cell(PAGE_WIDTH_MM, 8, section["titulo"], new_x="LMARGIN", new_y="NEXT")
        if "imagen" in section:
            pdf.image(io.BytesIO(section["imagen"]), w=PAGE_WIDTH_MM)
        if "texto" in section:
            pdf.set_font(FONT, "", 9)
            pdf.multi_cell(PAGE_WIDTH_MM, 5, section["texto"], new_x="LMARGIN", new_y="NEXT")
        if "tabla" in section:
            header, rows, widths = section["tabla"]
            pdf.set_font(FONT, "", 8)
            with pdf.table(col_widths=widths, text_align="LEFT", line_height=5,
                           headings_style=_bold()) as table:
                table.row(header)
                for cells in rows:
                    row = table.row()
                    for cell in cells:
                        # (text, link): a link the reader can tap (the account in Podio).
                        if isinstance(cell, tuple):
                            row.cell(cell[0], link=cell[1])
                        else:
                            row.cell(cell)
    return bytes(pdf.output())


def _bold() -> Any:
    from fpdf.fonts import FontFace

    return FontFace(family=FONT, emphasis="BOLD", fill_color=(230, 236, 240))
