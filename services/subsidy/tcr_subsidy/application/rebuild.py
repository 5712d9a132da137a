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
    batch_pages: int = 1,
    progress: Progress | None = None,
) -> int:
    """Apply the registry feed from the recorded position up to `up_to` (default: the head when a page comes
    back empty), up to `batch_pages` pages at a time, each batch with the position it reaches (the sink commits
    it in one or more transactions, each with its position). Returns the position reached."""
    position = await sink.position()
    while up_to is None or position < up_to:
        events: list = []
        target, head = position, 0
        for _ in range(max(1, batch_pages)):
            page = await feed.page(target, limit=page_size)
            head = max(head, page.head)
            kept = [e for e in page.events if up_to is None or e.position <= up_to]
            reached = page.next_after if up_to is None else min(page.next_after, up_to)
            if len(kept) < len(page.events) or (not page.events and up_to is not None and page.head >= up_to):
                reached = up_to
            if reached <= target:
                break  # nothing more to read now
            events.extend(kept)
            target = reached
            if up_to is not None and target >= up_to:
                break
        if target <= position:
            if progress:
                progress(position, head)
            break
        await sink.apply(events, target)
        position = target
        if progress:
            progress(position, max(head, position))
    return position
