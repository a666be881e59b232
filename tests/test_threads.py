"""One thread per math library wherever the series runs: the matrices are small, and extra threads spin when
the machine is busy (issue: notebooks 10-57x slower beside one busy process). See README, "Speed"."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jupyter_client.kernelspec import KernelSpecManager

from helpers.threads import THREAD_VARS

ROOT = Path(__file__).resolve().parent.parent


def test_the_venv_kernel_sets_one_thread_per_library():
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert Path(spec.resource_dir).is_relative_to(Path(sys.prefix)), "make setup installs the kernel into the venv"
    assert {v: spec.env.get(v) for v in THREAD_VARS} == dict.fromkeys(THREAD_VARS, "1")


def test_a_kernel_started_from_that_spec_runs_one_thread_even_when_the_caller_does_not_ask():
    """Start the venv's python3 kernel from an environment without the variables; read the thread counts inside."""
    code = ("import json, torch, numpy\nfrom threadpoolctl import threadpool_info\n"
            "print(json.dumps([torch.get_num_threads(), sorted({i['num_threads'] for i in threadpool_info()})]))")
    script = ("from jupyter_client.manager import start_new_kernel\n"
              f"km, kc = start_new_kernel(kernel_name='python3')\nout = []\n"
              f"kc.execute_interactive({code!r}, output_hook=lambda m: out.append(m['content'].get('text', '')))\n"
              "kc.stop_channels(); km.shutdown_kernel(now=True); print(''.join(out))")
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    torch_threads, blas_threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert torch_threads == 1 and blas_threads == [1], (torch_threads, blas_threads, done.stderr[-2000:])


def test_conda_and_binder_environments_set_one_thread():
    for path in (ROOT / "environment.yml", ROOT / ".binder" / "environment.yml"):
        assert yaml.safe_load(path.read_text())["variables"] == dict.fromkeys(THREAD_VARS, "1"), path
    start = ROOT / ".binder" / "start"
    assert os.access(start, os.X_OK) and 'exec "$@"' in start.read_text()
    assert all(f"{v}=1" in start.read_text() for v in THREAD_VARS)


def test_limit_threads_sets_torch_and_blas_in_a_process_started_without_the_variables():
    """What a notebook's first cell does where the kernel starts without the variables (Colab, VS Code)."""
    code = ("import json, torch, numpy\nfrom threadpoolctl import threadpool_info\nfrom helpers.threads import "
            "limit_threads\nbefore = torch.get_num_threads()\nassert limit_threads() is None\n"
            "print(json.dumps([before, torch.get_num_threads(), sorted({i['num_threads'] for i in threadpool_info()})]))")
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    before, torch_threads, blas_threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == torch_num_threads_default() and torch_threads == 1 and blas_threads == [1], done.stderr


def torch_num_threads_default() -> int:
    """What torch uses without the variables: one thread per physical core (at least one)."""
    code = "import torch; print(torch.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_limit_threads_rejects_bad_counts(n, error):
    from helpers.threads import limit_threads

    with pytest.raises(error, match=r"^n must be"):  # the message names the argument
        limit_threads(n)
