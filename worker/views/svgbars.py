"""Grouped horizontal bars as inline SVG, with labels that wrap and are never cut (the
charts of `winback report --format html`)."""

from __future__ import annotations

from html import escape

WIDTH = 960
CHAR = 7.0  # a generous average advance of a 12px system-ui glyph, in SVG units


def _label_lines(label: str, room: float) -> list[str]:
    """A bar label whole: on one line when it fits, else broken after " / " (cadence, then
    the reason or step) and at spaces; never cut."""
    if len(label) * CHAR <= room:
        return [label]
    lines: list[str] = []
    for part in label.replace(" / ", " /\n").splitlines():
        line = ""
        for word in part.split(" "):
            if line and (len(line) + 1 + len(word)) * CHAR > room:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def bars(title: str, labels: list[str], series: list[tuple[str, str, list[float]]]) -> str:
    """Grouped horizontal bars: one group per label, one bar per series; the label column is
    as wide as the longest label needs (up to half the chart), long labels wrap."""
    bar, gap, line_height = 12, 10, 14
    room = min(max([len(label) * CHAR for label in labels] + [180.0]), WIDTH / 2 - 20)
    left = room + 16
    wrapped = [_label_lines(label, room) for label in labels]
    groups = [max(bar * len(series), line_height * len(lines)) + gap for lines in wrapped]
    height = 30 + sum(groups)
    top = max([v for _, _, values in series for v in values] + [1])
    parts = [f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height}" '
             'xmlns="http://www.w3.org/2000/svg" class="chart">']
    y = 20
    for index, lines in enumerate(wrapped):
        spans = "".join(f'<tspan x="4" dy="{0 if n == 0 else line_height}">{escape(text)}'
                        "</tspan>" for n, text in enumerate(lines))
        parts.append(f'<text class="label" x="4" y="{y + bar}" font-size="12">{spans}</text>')
        for s, (_name, color, values) in enumerate(series):
            value = values[index]
            w = (WIDTH - left - 40) * value / top
            parts.append(f'<rect class="bar" x="{left:.0f}" y="{y + s * bar}" width="{w:.1f}" '
                         f'height="{bar - 2}" fill="{color}"><title>{escape(_name)}: '
                         f"{value:g}</title></rect><text x=\"{left + 5 + w:.1f}\" "
                         f'y="{y + s * bar + bar - 3}" font-size="10">{value:g}</text>')
        y += groups[index]
    parts.append("</svg>")
    return "".join(parts)
