"""The reports' charts, drawn with matplotlib (Agg backend: no display needed) as PNG bytes:
the trend of the chosen KPIs over the last periods and the bars by AM. Labels in Spanish,
numbers in Mexico's format; DejaVu Sans (bundled with matplotlib) on every machine."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

# The object API (Figure, not pyplot): no global figure state, so a report drawn in the
# service's rule thread does not share anything with another one.
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from reports import fmt  # noqa: E402
from reports.build import Report  # noqa: E402

DPI = 110  # a 6.4 in wide chart is ~700 px: sharp on a phone, small enough for an email
COLORS = ("#1f6f8b", "#e07a1f", "#3b8e3b", "#8e3b6e")
TARGET_COLOR = "#999999"
TEAM = "Todo el equipo"


@dataclass(frozen=True)
class Chart:
    """One chart: its Content-ID (cid) in the email, title, description and PNG."""

    cid: str
    title: str
    alt: str
    png: bytes


def charts(report: Report, targets: dict[str, float | None]) -> list[Chart]:
    """The report's charts: one trend line chart, and bars by AM (the team and monthly
    reports) or the AM against the team (not drawn when there is nothing to show)."""
    out = []
    if any(v is not None for series in report.trend.values() for _p, v in series):
        out.append(Chart("tendencia", "Tendencia", _trend_alt(report), _trend(report, targets)))
    bars: dict[str, list[tuple[str, float | None]]] = {
        k: [(name, v) for name, v in rows if v is not None] for k, rows in report.by_am.items()}
    if report.am_key is None and (report.ams or any(bars.values())):
        out.append(Chart("por-am", "Por AM", "Barras por AM: "
                         + ", ".join(report.names[k] for k in bars), _bars(report, bars)))
    if report.am_key is not None:
        mine: dict[str, list[tuple[str, float | None]]] = {}
        for k, rows in bars.items():
            team = report.team.get(k)
            mine[k] = ([(n, v) for n, v in rows if n == report.audience]
                       + ([(TEAM, team)] if team is not None else []))
        if any(len(rows) > 1 for rows in mine.values()):
            out.append(Chart("frente-al-equipo", "Frente al equipo",
                             f"Barras de {report.audience} y de todo el equipo: "
                             + ", ".join(report.names[k] for k in mine),
                             _bars(report, mine, [report.audience, TEAM], "Frente al equipo")))
    return out


def _percent_axis(ax: object) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt.percent(v, 0)))  # type: ignore[attr-defined]


def _trend_alt(report: Report) -> str:
    names = ", ".join(report.names[k] for k in report.trend)
    first, last = (next(iter(report.trend.values()))[i][0] for i in (0, -1))
    return f"Tendencia de {names} de {first} a {last}"


def _trend(report: Report, targets: dict[str, float | None]) -> bytes:
    fig = Figure(figsize=(6.4, 3.4), dpi=DPI)
    ax = fig.subplots()
    for color, (kpi, series) in zip(COLORS, report.trend.items(), strict=False):
        labels = [p for p, _v in series]
        points = [(i, v) for i, (_p, v) in enumerate(series) if v is not None]
        if points:
            ax.plot([i for i, _v in points], [v for _i, v in points], marker="o", color=color,
                    label=report.names[kpi], linewidth=2)
        target = targets.get(kpi)
        if target is not None:
            ax.axhline(target, color=color, linestyle=":", linewidth=1)
        ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 105)
    _percent_axis(ax)
    ax.set_title(f"Tendencia ({report.period_text})", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12),
              ncol=len(report.trend), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _bars(report: Report, bars: dict[str, list[tuple[str, float | None]]],
          people: list[str] | None = None, title: str = "Por AM") -> bytes:
    """Horizontal bars of each KPI for each row (every AM, or the AM and the team)."""
    if people is None:
        people = sorted({name for rows in bars.values() for name, _v in rows} | set(report.ams))
    fig = Figure(figsize=(6.4, 1.0 + 0.45 * max(len(people), 2) * len(bars)), dpi=DPI)
    ax = fig.subplots()
    height = 0.8 / max(len(bars), 1)
    for i, (color, (kpi, rows)) in enumerate(zip(COLORS, bars.items(), strict=False)):
        found = dict(rows)
        ys = [j + i * height for j in range(len(people))]
        widths = [found.get(p) or 0.0 for p in people]
        drawn = ax.barh(ys, widths, height=height, color=color, label=report.names[kpi])
        ax.bar_label(drawn, labels=[fmt.percent(found.get(p)) if p in found else fmt.EMPTY
                                    for p in people], fontsize=7, padding=2)
    ax.set_yticks([j + height * (len(bars) - 1) / 2 for j in range(len(people))], people,
                  fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 115)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt.percent(v, 0)))
    ax.set_title(f"{title} ({report.period_text})", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(bars),
              frameon=False)
    return _png(fig)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
