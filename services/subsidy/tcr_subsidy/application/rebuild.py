"""Rebuilding the projection: replaying the registry feed, page by page, into a positioned sink."""

from __future__ import annotations

from collections.abc import Callable

from tcr_subsidy.application.ports import PositionedSink, RegistryPages

Progress = Callable[[int, int], None]  # (position reached, registry head)


async def replay(
    sink: PositionedSink,
    feed: RegistryPages,
    *,
    up_to: int | None = None,
    page_size: int = 1000,
    progress: Progress | None = None,
) -> int:
    """Apply the registry feed from the recorded position up to `up_to` (default: the head when a page comes
    back empty), page by page, each page in one transaction with its position. Returns the position reached."""
    position = await sink.position()
    while up_to is None or position < up_to:
        page = await feed.page(position, limit=page_size)
        events = [e for e in page.events if up_to is None or e.position <= up_to]
        target = page.next_after if up_to is None else min(page.next_after, up_to)
        if len(events) < len(page.events) or (not page.events and up_to is not None and page.head >= up_to):
            target = up_to
        if target <= position:
            if progress:
                progress(position, page.head)
            break
        await sink.apply(events, target)
        position = target
        if progress:
            progress(position, max(page.head, position))
    return position
