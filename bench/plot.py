"""SVG charts for bench/run: a line chart over categories (log or linear y,
optional min-max whiskers) and a horizontal bar chart. Python 3 standard
library only, no plotting package: the bench's plots are written the same
way on every machine, and `make bench-smoke` draws them too.

Every chart has an opaque light background, so it reads the same in a
light or dark page, a <title> per point (its value on hover) and a <desc>
with the whole data set as text (screen readers, diffs)."""
import math
from xml.sax.saxutils import escape

# one colour and dash per server, the same in every chart
STYLE = {
    "houston": ("#1f6fb4", ""),
    "ceiling": ("#555555", "6,4"),
    "nchan": ("#d9822b", "2,3"),
}
FALLBACK = ["#2a9d4b", "#9c3fbf", "#c23b3b"]
W, H = 640, 380
LEFT, RIGHT, TOP, BOTTOM = 78, 150, 44, 56


def si(v):
    """1234567 -> '1.2M'; small values keep their decimals."""
    if v is None:
        return "n/a"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _ticks(lo, hi, log):
    if log:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        # 1-2-5 steps when a few decades are shown, decades beyond
        steps = (1, 2, 5) if b - a <= 3 else (1,)
        ticks = [m * 10.0 ** e for e in range(a, b) for m in steps] + [10.0 ** b]
        return ticks, 10.0 ** a, 10.0 ** b
    step = 10 ** (math.floor(math.log10(hi - lo if hi > lo else hi or 1)) - 1)
    for m in (1, 2, 5, 10, 20, 50, 100):
        if (hi - lo) / (step * m) <= 6:
            step *= m
            break
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t < hi + step * 0.999:
        ticks.append(t)
        t += step
    return ticks, ticks[0], ticks[-1]


def _head(title, desc, h=H):
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="{W}" height="{h}" '
            f'font-family="DejaVu Sans, Arial, sans-serif" font-size="12" role="img">',
            f"<title>{escape(title)}</title>", f"<desc>{escape(desc)}</desc>",
            f'<rect width="{W}" height="{h}" fill="#ffffff"/>',
            f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold" '
            f'fill="#111111">{escape(title)}</text>']


def line_chart(title, x_label, y_label, categories, series, log=True, note=""):
    """series: {name: [(value, low, high) or None per category]}; low/high
    (may be None) draw a whisker. Returns the SVG text."""
    values = [p[i] for pts in series.values() for p in pts if p for i in range(3)
              if p[i] is not None and (p[i] > 0 or not log)]
    if not values:
        values = [1.0, 10.0]
    lo, hi = min(values), max(values)
    if log:
        lo, hi = lo / 1.5, hi * 1.5
    else:
        lo, hi = min(0.0, lo), hi * 1.1 if hi > 0 else 1.0
    ticks, lo, hi = _ticks(lo, hi, log)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def ypos(v):
        if log:
            f = (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            f = (v - lo) / (hi - lo)
        return TOP + ph * (1 - f)

    def xpos(i):
        return LEFT + (pw * (i + 0.5) / len(categories))

    desc = "; ".join(f"{name}: " + ", ".join(f"{c}={si(p[0]) if p else 'n/a'}" for c, p in zip(categories, pts))
                     for name, pts in series.items())
    out = _head(title, f"{y_label} by {x_label}. {desc}")
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999999"/>')
    for t in ticks:
        y = ypos(t)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#333333">{si(t)}</text>')
    for i, c in enumerate(categories):
        out.append(f'<text x="{xpos(i):.1f}" y="{TOP + ph + 18}" text-anchor="middle" '
                   f'fill="#333333">{escape(str(c))}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 14}" text-anchor="middle" fill="#111111">'
               f'{escape(x_label)}</text>')
    out.append(f'<text transform="translate(16,{TOP + ph / 2}) rotate(-90)" text-anchor="middle" '
               f'fill="#111111">{escape(y_label)}{" (log scale)" if log else ""}</text>')
    for k, (name, pts) in enumerate(series.items()):
        colour, dash = STYLE.get(name, (FALLBACK[k % len(FALLBACK)], ""))
        coords = [(xpos(i), ypos(p[0]), p) for i, p in enumerate(pts)
                  if p and p[0] is not None and (p[0] > 0 or not log)]
        if len(coords) > 1:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
            out.append(f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="2.5"'
                       + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        for x, y, p in coords:
            if p[1] is not None and p[2] is not None and p[1] > 0:
                out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{ypos(p[1]):.1f}" y2="{ypos(p[2]):.1f}" '
                           f'stroke="{colour}" stroke-width="1.5"/>')
            tip = f"{name}: {si(p[0])}" + (f" ({si(p[1])}-{si(p[2])})" if p[1] is not None else "")
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"><title>{escape(tip)}'
                       "</title></circle>")
        ly = TOP + 14 + 20 * k
        out.append(f'<line x1="{W - RIGHT + 14}" x2="{W - RIGHT + 44}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2.5"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>")
        out.append(f'<text x="{W - RIGHT + 50}" y="{ly + 4}" fill="#111111">{escape(name)}</text>')
    if note:
        for j, line in enumerate(note.split("\n")):
            out.append(f'<text x="{W - RIGHT + 14}" y="{TOP + 90 + 15 * j}" font-size="10" '
                       f'fill="#444444">{escape(line)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def bar_chart(title, x_label, bars, note=""):
    """bars: [(name, value or None)], horizontal, linear scale from 0."""
    known = [v for _, v in bars if v is not None and v > 0] or [1.0]
    ticks, _, hi = _ticks(0.0, max(known) * 1.1, False)
    pw = W - LEFT - 60 - 40
    row = 48
    h = TOP + row * len(bars) + 70
    desc = ", ".join(f"{n}={si(v)}" for n, v in bars)
    out = _head(title, f"{x_label}: {desc}", h)
    left = LEFT + 40
    for t in ticks:
        x = left + pw * t / hi
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + row * len(bars)}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + row * len(bars) + 16}" text-anchor="middle" '
                   f'fill="#333333">{si(t)}</text>')
    for k, (name, v) in enumerate(bars):
        colour = STYLE.get(name, (FALLBACK[k % len(FALLBACK)], ""))[0]
        y = TOP + row * k + row * 0.2
        out.append(f'<text x="{left - 8}" y="{y + row * 0.35:.1f}" text-anchor="end" fill="#111111">'
                   f'{escape(name)}</text>')
        if v is not None and v > 0:
            out.append(f'<rect x="{left}" y="{y:.1f}" width="{pw * v / hi:.1f}" height="{row * 0.6:.1f}" '
                       f'fill="{colour}"><title>{escape(name)}: {v:,.0f}</title></rect>')
            out.append(f'<text x="{left + pw * v / hi + 6:.1f}" y="{y + row * 0.35:.1f}" '
                       f'fill="#111111">{v:,.0f}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{TOP + row * len(bars) + 36}" text-anchor="middle" '
               f'fill="#111111">{escape(x_label)}</text>')
    if note:
        out.append(f'<text x="{W / 2}" y="{h - 8}" text-anchor="middle" font-size="10" '
                   f'fill="#444444">{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
