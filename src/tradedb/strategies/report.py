"""A backtest tear sheet: one self-contained HTML file (inline SVG and CSS, no script, no network).

It shows the growth of one unit of capital (other runs overlaid when given), the underwater drawdown, monthly
returns as a heatmap, the rolling Sharpe ratio and the metric table. Long curves are drawn from the minimum and
maximum of each horizontal pixel bucket, so a 10-million-point run draws as fast as a short one and keeps its
extremes.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tradedb.strategies.metrics import drawdown, instant

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
DRAWDOWN_COLOR = "#d62728"
WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 960, 260, 64, 28, 12
BUCKETS = 1200
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SHOWN = (
    ("total_return", "Total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("annual_volatility", "Annual volatility", "pct"),
    ("sharpe_ratio", "Sharpe ratio", "num"),
    ("sortino_ratio", "Sortino ratio", "num"),
    ("calmar_ratio", "Calmar ratio", "num"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_peak", "Max drawdown peak", "text"),
    ("max_drawdown_trough", "Max drawdown trough", "text"),
    ("max_drawdown_recovery", "Max drawdown recovery", "text"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "num"),
    ("average_win", "Average win", "num"),
    ("average_loss", "Average loss", "num"),
    ("trade_count", "Trades", "int"),
    ("exposure", "Exposure", "pct"),
    ("turnover", "Turnover (per year)", "num"),
    ("alpha", "Alpha", "pct"),
    ("beta", "Beta", "num"),
    ("periods_per_year", "Periods per year", "num"),
)


@dataclass(frozen=True)
class Curve:
    """One run to draw: its label, metrics, and equity curve (datetime64[us] times, float equity)."""

    label: str
    metrics: dict[str, Any]
    ts: np.ndarray
    equity: np.ndarray


def render(main: Curve, others: Sequence[Curve] = (), *, title: str | None = None) -> str:
    """The tear sheet of ``main`` (and ``others`` overlaid) as HTML text."""
    runs = [main, *others]
    ppy = float(main.metrics.get("periods_per_year") or 252.0)
    window = max(2, min(int(ppy // 2), max(2, len(main.equity) // 4)))
    growth = _line_chart(
        [(c.label, c.ts, c.equity / c.equity[0]) for c in runs], y_format="x", title="Growth of 1 (log scale)", log=True
    )
    underwater = _area_chart(main.ts, drawdown(main.equity) * 100.0, title="Underwater: drawdown from the peak (%)")
    rolling = _line_chart(
        [(main.label, main.ts[window:], _rolling_sharpe(main.equity, window, ppy))],
        y_format="num",
        title=f"Rolling Sharpe ratio ({window} periods)",
        zero_line=True,
    )
    heatmap = _monthly_heatmap(main.ts, main.equity)
    heading = html.escape(title or f"Backtest {main.label}")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    legend = "".join(
        f'<span class="key"><i style="background:{COLORS[i % len(COLORS)]}"></i>{html.escape(c.label)}</span>'
        for i, c in enumerate(runs)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{heading}</title>
<style>
body {{ font: 14px/1.4 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222;
       background: #fff; max-width: 1000px; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 24px 0 6px; }}
.meta {{ color: #666; margin-bottom: 12px; }}
.key {{ margin-right: 16px; }} .key i {{ display: inline-block; width: 14px; height: 4px; margin: 0 6px 3px 0; }}
table.metrics {{ border-collapse: collapse; margin-top: 8px; }}
table.metrics td, table.metrics th {{ padding: 3px 12px; border-bottom: 1px solid #eee; text-align: right; }}
table.metrics td:first-child, table.metrics th:first-child {{ text-align: left; }}
svg text {{ font-size: 11px; fill: #555; }}
</style></head>
<body>
<h1>{heading}</h1>
<div class="meta">{html.escape(_period(main))} &middot; generated {generated} by tradedb</div>
<div>{legend}</div>
<h2>Equity</h2>{growth}
<h2>Drawdown</h2>{underwater}
<h2>Monthly returns (%)</h2>{heatmap}
<h2>Rolling Sharpe</h2>{rolling}
<h2>Metrics</h2>{_metric_table(runs)}
</body></html>
"""


def _period(curve: Curve) -> str:
    first, last = instant(curve.ts[0]), instant(curve.ts[-1])
    return f"{first:%Y-%m-%d} to {last:%Y-%m-%d}, {len(curve.equity):,} points"


def _rolling_sharpe(equity: np.ndarray, window: int, ppy: float) -> np.ndarray:
    r = equity[1:] / equity[:-1] - 1.0
    c1 = np.concatenate([[0.0], np.cumsum(r)])
    c2 = np.concatenate([[0.0], np.cumsum(r * r)])
    total, squares = c1[window:] - c1[:-window], c2[window:] - c2[:-window]
    mean = total / window
    var = np.maximum(squares / window - mean * mean, 0.0) * window / (window - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        result: np.ndarray = np.where(var > 0, mean / np.sqrt(var) * math.sqrt(ppy), np.nan)
    return result


def _envelope(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most 2 * BUCKETS points keeping each bucket's minimum and maximum (in time order)."""
    n = len(x)
    if n <= 2 * BUCKETS:
        return x, y
    edges = np.linspace(0, n, BUCKETS + 1).astype(np.int64)
    keep: list[int] = []
    for a, b in itertools.pairwise(edges):
        if b <= a:
            continue
        part = y[a:b]
        finite = np.isfinite(part)
        if not finite.any():
            continue
        lo = a + int(np.nanargmin(part))
        hi = a + int(np.nanargmax(part))
        keep.extend(sorted({lo, hi}))
    idx = np.asarray(keep, dtype=np.int64)
    return x[idx], y[idx]


class _Frame:
    """Maps data to pixels for one chart."""

    def __init__(self, x: np.ndarray, lows: float, highs: float, log: bool = False) -> None:
        self.x0, self.x1 = float(x.min()), float(x.max())
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        self.log = log
        lo, hi = (math.log10(lows), math.log10(highs)) if log else (lows, highs)
        if hi <= lo:
            hi, lo = hi + 1.0, lo - 1.0
        span = hi - lo
        self.y0, self.y1 = lo - 0.05 * span, hi + 0.05 * span

    def px(self, x: np.ndarray) -> np.ndarray:
        inner = WIDTH - PAD_LEFT - 10
        result: np.ndarray = PAD_LEFT + (x - self.x0) / (self.x1 - self.x0) * inner
        return result

    def py(self, y: np.ndarray) -> np.ndarray:
        value = np.log10(y) if self.log else y
        inner = HEIGHT - PAD_BOTTOM - PAD_TOP
        result: np.ndarray = PAD_TOP + (self.y1 - value) / (self.y1 - self.y0) * inner
        return result

    def axes(self, y_format: str) -> str:
        parts = [
            f'<line x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - 10}" y2="{HEIGHT - PAD_BOTTOM}" '
            'stroke="#999"/>'
        ]
        for value in _ticks(self.y0, self.y1):
            shown = 10**value if self.log else value
            y = float(self.py(np.array([shown]))[0])
            label = _format(shown, y_format)
            parts.append(
                f'<line x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH - 10}" y2="{y:.1f}" stroke="#eee"/>'
                f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
            )
        for value in _ticks(self.x0, self.x1, count=8):
            x = float(self.px(np.array([value]))[0])
            when = datetime.fromtimestamp(value / 1e6, tz=UTC)
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{when:%Y-%m-%d}</text>')
        return "".join(parts)


def _svg(body: str, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>{body}</svg>'
    )


def _line_chart(
    lines: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    y_format: str,
    title: str,
    log: bool = False,
    zero_line: bool = False,
) -> str:
    xs = [ts.astype("datetime64[us]").astype(np.int64).astype(np.float64) for _, ts, _ in lines]
    ys = [np.asarray(y, dtype=np.float64) for _, _, y in lines]
    finite = [y[np.isfinite(y)] for y in ys]
    present = [f for f in finite if len(f)]
    if not present:
        return _svg(f'<text x="{PAD_LEFT}" y="40">not enough points</text>', title)
    lo, hi = min(float(f.min()) for f in present), max(float(f.max()) for f in present)
    frame = _Frame(np.concatenate(xs), lo, hi, log=log)
    body = [frame.axes(y_format)]
    if zero_line and lo < 0 < hi:
        zero = float(frame.py(np.array([0.0]))[0])
        body.append(f'<line x1="{PAD_LEFT}" y1="{zero:.1f}" x2="{WIDTH - 10}" y2="{zero:.1f}" stroke="#999"/>')
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        keep = np.isfinite(y)
        px, py = _envelope(frame.px(x[keep]), frame.py(y[keep]))
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        color = COLORS[i % len(COLORS)]
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
    return _svg("".join(body), title)


def _area_chart(ts: np.ndarray, values: np.ndarray, *, title: str) -> str:
    x = ts.astype("datetime64[us]").astype(np.int64).astype(np.float64)
    lo = float(values.min())
    frame = _Frame(x, min(lo, -1e-9), 0.0)
    px, py = _envelope(frame.px(x), frame.py(values))
    base = float(frame.py(np.array([0.0]))[0])
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
    polygon = f"{px[0]:.1f},{base:.1f} {points} {px[-1]:.1f},{base:.1f}"
    body = frame.axes("points") + (
        f'<polygon fill="{DRAWDOWN_COLOR}" fill-opacity="0.35" stroke="{DRAWDOWN_COLOR}" stroke-width="1.5" '
        f'points="{polygon}"/>'
    )
    return _svg(body, title)


def monthly_returns(ts: np.ndarray, equity: np.ndarray) -> dict[tuple[int, int], float]:
    """(year, month) -> return over the month, from the last point of the previous month (or the first point)."""
    months = ts.astype("datetime64[M]")
    last = np.flatnonzero(np.concatenate([months[1:] != months[:-1], [True]]))
    closes = equity[last]
    opens = np.concatenate([[equity[0]], closes[:-1]])
    result = {}
    for i, month in zip(last, closes / opens - 1.0, strict=True):
        when = months[i].astype(object)
        result[(when.year, when.month)] = float(month)
    return result


def _monthly_heatmap(ts: np.ndarray, equity: np.ndarray) -> str:
    table = monthly_returns(ts, equity)
    years = sorted({y for y, _ in table})
    cell_w, cell_h, left, top = 66, 22, 52, 20
    scale = max((abs(v) for v in table.values()), default=0.0) or 1.0
    parts = [
        f'<text x="{left + i * cell_w + cell_w / 2}" y="14" text-anchor="middle">{name}</text>'
        for i, name in enumerate(MONTHS)
    ]
    for row, year in enumerate(years):
        y = top + row * cell_h
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{year}</text>')
        for col in range(12):
            value = table.get((year, col + 1))
            x = left + col * cell_w
            fill = "#f4f4f4" if value is None else _diverging(value / scale)
            parts.append(f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}"/>')
            if value is not None:
                ink = ' style="fill:#fff"' if abs(value / scale) > 0.6 else ""
                parts.append(
                    f'<text x="{x + cell_w / 2 - 1}" y="{y + 15}" text-anchor="middle"{ink}>{value * 100:.1f}</text>'
                )
    height = top + len(years) * cell_h + 6
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + 12 * cell_w}" height="{height}" role="img" '
        f'aria-label="Monthly returns"><title>Monthly returns</title>{"".join(parts)}</svg>'
    )


def _diverging(t: float) -> str:
    """Red (-1) through white (0) to green (+1)."""
    t = max(-1.0, min(1.0, t))
    if t >= 0:
        r, g, b = 255 - int(211 * t), 255 - int(95 * t), 255 - int(211 * t)  # to #2ca02c
    else:
        r, g, b = 255 - int(41 * -t), 255 - int(216 * -t), 255 - int(215 * -t)  # to #d62728
    return f"#{r:02x}{g:02x}{b:02x}"


def _metric_table(runs: Sequence[Curve]) -> str:
    head = "".join(f"<th>{html.escape(c.label)}</th>" for c in runs)
    rows = []
    for key, label, kind in SHOWN:
        if all(c.metrics.get(key) is None for c in runs):
            continue
        cells = "".join(f"<td>{_format(c.metrics.get(key), kind)}</td>" for c in runs)
        rows.append(f"<tr><td>{label}</td>{cells}</tr>")
    return f'<table class="metrics"><tr><th>Metric</th>{head}</tr>{"".join(rows)}</table>'


def _format(value: Any, kind: str) -> str:
    if value is None:
        return "&ndash;"
    if kind == "text":
        return html.escape(str(value)[:19].replace("T", " "))
    if kind == "int":
        return f"{int(value):,}"
    number = float(value)
    if kind == "pct":
        return f"{number * 100:.2f}%"
    if kind == "x":
        return f"{number:.3g}x"
    if kind == "points":
        return f"{number:.0f}%"
    return f"{number:,.3f}" if abs(number) < 1e6 else f"{number:,.0f}"


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(s * magnitude for s in (1, 2, 2.5, 5, 10) if s * magnitude >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]
