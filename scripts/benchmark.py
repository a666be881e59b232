"""Time every notebook in a fresh kernel, quiet and beside a busy process; print a table and the slowest cells.

Usage: ``make bench`` (or ``python scripts/benchmark.py [--repeats N] [--threads N] [--quiet-only] [notebook ...]``).
Each notebook is run ``repeats`` times quiet and ``repeats`` times with one busy process beside it (a bounded
busy loop this script starts and stops itself), interleaved so that drift in the machine's load hits both alike;
the table shows the medians, the kernel's CPU seconds in the quiet runs (a figure that barely changes with the
machine's load: compare it when the machine is busy), the loaded/quiet ratio, the kernel's peak memory and the
slowest cells of the median quiet run.
Targets on a 2-core machine: each notebook ≤ 15 s quiet and loaded ≤ 1.5× quiet.
``--threads N``: the kernel's math libraries get N threads (default 1, as in the project's kernel).
``python scripts/benchmark.py --monitor-overhead``: the cost of ``monitor.watch`` per training step instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

QUIET_TARGET_S = 15.0
LOADED_RATIO_TARGET = 1.5
BUSY_LIMIT_S = 900  # the busy loop stops itself after this, even if this script dies
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers.threads import THREAD_VARS  # noqa: E402


def cell_seconds(cell) -> float:
    """Wall time of one executed code cell, from the timing nbclient records in its metadata."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda stamp: datetime.fromisoformat(stamp.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_one(path: Path, kernel_name: str) -> dict:
    """Execute one notebook in a fresh kernel (our child); wall time, peak memory, per-cell times."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent)}}
                   ).execute()
    wall = time.perf_counter() - start
    # the kernel was our child and has exited: its peak RSS (KiB on Linux, bytes on macOS) and CPU time are in
    # RUSAGE_CHILDREN; CPU time barely changes with the machine's load, so it compares runs made on a busy machine
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cells = [(index, cell_seconds(cell)) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    return {"seconds": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "cells": cells,
            "peak_mib": usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20}


def kernel_with_threads(threads: int, folder: Path) -> tuple[str, dict]:
    """A kernelspec like the project's ``python3`` but with ``threads`` per math library; (name, environment)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    name = f"bench-threads-{threads}"
    target = folder / "kernels" / name
    target.mkdir(parents=True)
    env = {**spec.env, **{var: str(threads) for var in THREAD_VARS}}
    (target / "kernel.json").write_text(json.dumps({"argv": spec.argv, "display_name": name, "language": "python",
                                                    "env": env}))
    return name, {**os.environ, "JUPYTER_PATH": os.pathsep.join([str(folder), os.environ.get("JUPYTER_PATH", "")])}


def timed_run(path: Path, kernel: str, env: dict, *, busy: bool) -> dict:
    """One run in a child process (so its peak memory is its own), optionally beside one busy process."""
    spinner = None
    if busy:
        spinner = subprocess.Popen([sys.executable, "-c", f"import time\nend = time.time() + {BUSY_LIMIT_S}\n"
                                    "while time.time() < end:\n    pass"])
    try:
        out = subprocess.run([sys.executable, __file__, "--one", str(path), kernel], capture_output=True, text=True,
                             env=env, check=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def benchmark(paths: list[Path], *, repeats: int, threads: int, loaded: bool) -> list[dict]:
    """Median quiet (and loaded) wall time per notebook, peak memory, and the slowest cells of the quiet runs."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as folder:
        kernel, env = kernel_with_threads(threads, Path(folder))
        for path in paths:
            quiet, busy = [], []
            for _ in range(repeats):  # interleaved: a change in the machine's load hits both alike
                quiet.append(timed_run(path, kernel, env, busy=False))
                if loaded:
                    busy.append(timed_run(path, kernel, env, busy=True))
            median = sorted(quiet, key=lambda run: run["seconds"])[len(quiet) // 2]
            row = {"notebook": path.stem, "quiet_s": statistics.median(r["seconds"] for r in quiet),
                   "cpu_s": statistics.median(r["cpu_s"] for r in quiet),
                   "peak_mib": max(r["peak_mib"] for r in quiet),
                   "slowest": sorted(median["cells"], key=lambda cell: -cell[1])[:3]}
            if loaded:
                row["loaded_s"] = statistics.median(r["seconds"] for r in busy)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    flags = [] if row["quiet_s"] <= QUIET_TARGET_S else ["SLOW"]
    loaded = ""
    if "loaded_s" in row:
        ratio = row["loaded_s"] / row["quiet_s"]
        loaded = f"{row['loaded_s']:>8.1f} {ratio:>6.2f}x"
        flags += [] if ratio <= LOADED_RATIO_TARGET else ["LOAD-SENSITIVE"]
    else:
        loaded = f"{'':>8} {'':>7}"
    slowest = ", ".join(f"cell {index} {seconds:.1f} s" for index, seconds in row["slowest"])
    return (f"{row['notebook']:<32} {row['quiet_s']:>7.1f} {row['cpu_s']:>6.1f} {loaded} {row['peak_mib']:>8.0f}  "
            f"{slowest}  {' '.join(flags)}")


def monitor_overhead(repeats: int = 9, steps: int = 40) -> dict:
    """Median time of one SGD step of a 10-layer width-128 ReLU MLP (batch 64, float32, CPU), with and
    without ``monitor.watch`` (every step, and every 10th step); runs are interleaved so drift hits all alike."""
    import torch

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
        print(json.dumps(run_one(Path(argv[1]), argv[2])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="runs per notebook and condition (median shown)")
    parser.add_argument("--threads", type=int, default=1, help="threads per math library in the kernel")
    parser.add_argument("--quiet-only", action="store_true", help="skip the runs beside a busy process")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    print(f"{os.cpu_count()} cores, {args.threads} thread(s) per math library, median of {args.repeats}; "
          f"targets: quiet ≤ {QUIET_TARGET_S:.0f} s, loaded ≤ {LOADED_RATIO_TARGET}x quiet")
    print(f"{'notebook':<32} {'quiet s':>7} {'cpu s':>6} {'loaded s':>8} {'ratio':>7} {'peak MiB':>8}  slowest cells (quiet)")
    rows = benchmark(paths, repeats=args.repeats, threads=args.threads, loaded=not args.quiet_only)
    missed = [row for row in rows if row["quiet_s"] > QUIET_TARGET_S
              or row.get("loaded_s", 0) > LOADED_RATIO_TARGET * row["quiet_s"]]
    print(f"total quiet {sum(row['quiet_s'] for row in rows):.1f} s; {len(missed)} notebook(s) miss a target")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
