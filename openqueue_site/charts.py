"""Charts as server-rendered SVG: no JavaScript, no library, nothing from a CDN.

``throughput_chart`` draws jobs enqueued, completed and dead per bucket as
three lines; ``depth_chart`` the pending jobs. Both scale to their
container (CSS: ``.chart { width: 100% }``) and carry a text summary for
screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.models import User
from queues.samples import Bucket, series, totals

WIDTH, HEIGHT = 600, 150
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 24
SERIES = (("enqueued", "#2454c5"), ("completed", "#12813f"), ("dead", "#b42318"))


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * index / max(count - 1, 1))


def _y(value: float, top: float) -> float:
    span = HEIGHT - TOP - BOTTOM
    return TOP + span - (span * value / top if top else 0)


def _frame(top: float, buckets: Sequence[Bucket], label: str) -> SafeString:
    first, last = buckets[0].start, buckets[-1].start
    return format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>'
        '<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>'
        '<text x="{}" y="{}" class="tick" text-anchor="end">0</text>'
        '<text x="{}" y="{}" class="tick">{} UTC</text>'
        '<text x="{}" y="{}" class="tick" text-anchor="end">{} UTC</text>'
        '<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>',
        LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, HEIGHT - BOTTOM,
        LEFT - 4, TOP + 8, int(top),
        LEFT - 4, HEIGHT - BOTTOM,
        LEFT, HEIGHT - 6, first.strftime("%H:%M"),
        WIDTH - RIGHT, HEIGHT - 6, last.strftime("%H:%M"),
        (LEFT + WIDTH - RIGHT) / 2, HEIGHT - 6, label,
    )  # fmt: skip


def _line(points: Sequence[tuple[float, float]], colour: str, name: str) -> SafeString:
    return format_html(
        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2" class="s-{}"/>',
        " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
        colour,
        name,
    )


def throughput_chart(buckets: Sequence[Bucket], label: str) -> SafeString:
    """Enqueued, completed and dead jobs per bucket."""
    if not buckets:
        return SafeString("")
    top = max([1, *(getattr(b, name) for b in buckets for name, _ in SERIES)])
    count = len(buckets)
    lines = [
        _line(
            [(_x(i, count), _y(getattr(b, name), top)) for i, b in enumerate(buckets)],
            colour,
            name,
        )
        for name, colour in SERIES
    ]
    summed = totals(buckets)
    summary = ", ".join(f"{summed[name]} {name}" for name, _ in SERIES)
    legend = format_html_join(
        "", '<span class="key" style="--key:{}">{} {}</span>',
        ((colour, summed[name], name) for name, colour in SERIES),
    )  # fmt: skip
    return format_html(
        '<figure class="chart"><svg viewBox="0 0 {} {}" role="img" aria-label="{}: {}">'
        "<title>{}: {}</title>{}{}</svg><figcaption>{}: {}</figcaption></figure>",
        WIDTH, HEIGHT, label, summary, label, summary,
        _frame(top, buckets, label), SafeString("".join(lines)), label, legend,
    )  # fmt: skip


def depth_chart(buckets: Sequence[Bucket], label: str) -> SafeString:
    """Pending jobs at each bucket's last sample (gaps where none was taken)."""
    measured = [(i, b.depth) for i, b in enumerate(buckets) if b.depth is not None]
    if not measured:
        return format_html('<p class="muted chart-empty">{}: no samples yet.</p>', label)
    top = max([1, *(depth for _, depth in measured)])
    count = len(buckets)
    points = [(_x(i, count), _y(depth, top)) for i, depth in measured]
    latest = measured[-1][1]
    return format_html(
        '<figure class="chart"><svg viewBox="0 0 {} {}" role="img" aria-label="{}: {} pending now">'
        "<title>{}: {} pending now</title>{}{}</svg><figcaption>{}: {} pending at the last sample"
        "</figcaption></figure>",
        WIDTH, HEIGHT, label, latest, label, latest,
        _frame(top, buckets, label), _line(points, "#7c3aed", "depth"), label, latest,
    )  # fmt: skip


def dashboard_charts(
    *, owner: User | None, now: datetime, queue_name: str | None = None
) -> dict[str, SafeString]:
    """The four charts every dashboard shows: throughput and depth, last hour and last day."""
    hour = series(
        owner=owner, queue_name=queue_name, now=now, span=timedelta(hours=1),
        bucket=timedelta(minutes=1),
    )  # fmt: skip
    day = series(
        owner=owner, queue_name=queue_name, now=now, span=timedelta(days=1),
        bucket=timedelta(minutes=15),
    )  # fmt: skip
    return {
        "hour": throughput_chart(hour, "Jobs per minute, last hour"),
        "day": throughput_chart(day, "Jobs per 15 minutes, last day"),
        "hour_depth": depth_chart(hour, "Pending jobs, last hour"),
        "day_depth": depth_chart(day, "Pending jobs, last day"),
    }
