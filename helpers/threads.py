"""One thread per math library for the series' small matrices, set from inside a running kernel.

The project's kernel (``make setup``), the conda environment and Binder already start with
``OMP/MKL/OPENBLAS_NUM_THREADS=1``; where a kernel starts without them (Colab, VS Code, a kernel of another
environment), each notebook's first cell calls ``limit_threads()``: extra threads buy nothing at width ≤ 256
and spin when the machine is busy (``make bench`` measures both settings, quiet and beside a busy process).
"""

from __future__ import annotations

from helpers._validate import check_int

# the environment variables that set the thread count before a process starts (the Makefile, environment.yml and
# the kernelspec set each to 1; tests/test_threads.py checks that they do)
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def limit_threads(n: int = 1) -> None:
    """Use at most ``n`` threads in torch's intra-op pool and in every BLAS/OpenMP pool numpy or torch loaded.

    Applies to the whole process until changed again (it is meant for a notebook's first cell, whose output it
    leaves empty: it returns nothing).
    """
    import torch
    from threadpoolctl import threadpool_limits

    n = check_int("n", n, minimum=1)
    torch.set_num_threads(n)
    threadpool_limits(limits=n)
