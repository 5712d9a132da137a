"""Content negotiation: pick the best supported media type from Accept (with q-values), or 406."""

from __future__ import annotations

from tcr_shared.platform.problems import Problem

JSON = "application/json"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _parse(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        part = part.strip()
        if not part:
            continue
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    return ranges


def _matches(media_range: str, media: str) -> bool:
    if media_range in ("*/*", media):
        return True
    major, _, minor = media_range.partition("/")
    return minor == "*" and media.startswith(major + "/")


def negotiate(accept: str | None, supported: list[str]) -> str:
    """The supported type the client prefers most (ties: the order of `supported`). No Accept: the first."""
    if not accept or not accept.strip():
        return supported[0]
    ranges = _parse(accept)
    best: tuple[float, int] | None = None
    chosen = None
    for index, media in enumerate(supported):
        # the most specific range that matches decides the q of this type
        matching = [(r, q) for r, q in ranges if _matches(r, media)]
        if not matching:
            continue
        specific = max(matching, key=lambda rq: (rq[0] == media, rq[0].endswith("/*") and rq[0] != "*/*"))
        q = specific[1]
        if q <= 0:
            continue
        if best is None or (q, -index) > best:
            best = (q, -index)
            chosen = media
    if chosen is None:
        raise Problem(
            406,
            f"This resource is available as {', '.join(supported)}; the Accept header '{accept}' allows none of them.",
            supported=supported,
        )
    return chosen
