"""Execute every notebook in a fresh kernel, one after another; print wall time and peak memory.

Usage: ``make bench`` (or ``python scripts/benchmark.py [notebook ...]``). Targets on a 2-core
machine: each notebook under 30 s. Peak memory is the kernel process's maximum resident set size.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 30.0
ROOT = Path(__file__).resolve().parent.parent


def run_one(path: Path) -> dict:
    """Execute one notebook (in this process's child kernel) and measure it."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    wall = time.perf_counter() - start
    # the kernel was our child and has exited: its peak RSS is in RUSAGE_CHILDREN (KiB on Linux, bytes on macOS)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_mib = peak / 1024 if sys.platform != "darwin" else peak / 2**20
    return {"notebook": path.name, "seconds": round(wall, 1), "peak_mib": round(peak_mib)}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        print(json.dumps(run_one(Path(argv[1]))))
        return 0
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    print(f"{'notebook':<32} {'seconds':>8} {'peak MiB':>9}  target < {TARGET_SECONDS:.0f} s")
    slow = 0
    for path in paths:
        out = subprocess.run([sys.executable, __file__, "--one", str(path)], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        flag = "" if row["seconds"] < TARGET_SECONDS else "  SLOW"
        slow += bool(flag)
        print(f"{row['notebook']:<32} {row['seconds']:>8.1f} {row['peak_mib']:>9}{flag}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
