"""Execute every notebook in a fresh kernel, one after another; print wall time and peak memory.

Usage: ``make bench`` (or ``python scripts/benchmark.py [notebook ...]``). Targets on a 2-core
machine: each notebook under 30 s. Peak memory is the kernel process's maximum resident set size.
``python scripts/benchmark.py --monitor-overhead``: the cost of ``monitor.watch`` per training step instead.
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


def monitor_overhead(repeats: int = 9, steps: int = 40) -> dict:
    """Median time of one SGD step of a 10-layer width-128 ReLU MLP (batch 64, float32, CPU), with and
    without ``monitor.watch`` (every step, and every 10th step); runs are interleaved so drift hits all alike."""
    import statistics

    import torch

    sys.path.insert(0, str(ROOT))
    from helpers import models, monitor

    model = models.deep_mlp(128, 128, 10, 10, init="kaiming_normal", dtype=torch.float32,
                            generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(64, 128, generator=torch.Generator().manual_seed(1))
    y = torch.arange(64) % 10

    def loop():
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    def timed(every):
        start = time.perf_counter()
        if every is None:
            loop()
        else:
            with monitor.watch(model, opt, every=every):
                loop()
        return (time.perf_counter() - start) / steps

    settings = {"unmonitored": None, "watch, every=1": 1, "watch, every=10": 10}
    for every in settings.values():
        timed(every)  # warm-up
    times = {name: [] for name in settings}
    for _ in range(repeats):
        for name, every in settings.items():
            times[name].append(timed(every))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["unmonitored"]
    for name, value in medians.items():
        print(f"{name:<18} {1e3 * value:7.3f} ms per step  ({value / base:.2f}x)")
    return medians


def main(argv: list[str]) -> int:
    if argv[:1] == ["--monitor-overhead"]:
        monitor_overhead()
        return 0
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
