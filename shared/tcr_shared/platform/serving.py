"""How every tcr service process is served: `tcr-<service> serve` runs its app factory under uvicorn."""

from __future__ import annotations

import gc
import sys


def serve(
    factory: str,
    host: str,
    port: int,
    *,
    switch_interval: float | None = None,
    gc_thresholds: tuple[int, int, int] | None = None,
) -> None:
    """Run `factory` (e.g. "tcr_registry.bootstrap:create_app") until SIGTERM or Ctrl-C; settings come from the
    environment (TCR_*). `switch_interval` sets the process's GIL switch interval (the registry's writer thread
    wants it short) and `gc_thresholds` its garbage collector's; only the process owner may set such things, hence
    here and not in the app."""
    import uvicorn

    if switch_interval:
        sys.setswitchinterval(switch_interval)
    if gc_thresholds:
        gc.set_threshold(*gc_thresholds)
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
        log_level="warning",
    )
