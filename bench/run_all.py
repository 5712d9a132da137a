"""`make bench`: every service's benchmark in turn; each prints its own figures (also kept in bench-results/)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "bench-results"
ORDER = [
    "registry.py",
    "feed.py",
    "sse.py",
    "registry_import.py",
    "subsidy.py",
    "subsidy_whatif.py",
    "reporting.py",
    "partners.py",
]


def main() -> int:
    RESULTS.mkdir(exist_ok=True)
    failed = []
    for name in ORDER:
        script = HERE / name
        if not script.exists():
            continue
        print(f"\n=== {name[:-3]} " + "=" * 60, flush=True)
        started = time.monotonic()
        with open(RESULTS / f"{name[:-3]}.txt", "w") as log:
            process = subprocess.Popen(
                [sys.executable, str(script)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=HERE.parent,
            )
            for line in process.stdout:
                if line.startswith("{") and '"level"' in line:
                    continue  # service log lines are kept out of the figures
                print(line, end="", flush=True)
                log.write(line)
            process.wait()
        print(f"({name[:-3]} took {time.monotonic() - started:.0f}s)")
        if process.returncode:
            failed.append(name)
    print("\nfigures: bench-results/*.json; `python bench/readme_table.py` regenerates the README's table")
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
