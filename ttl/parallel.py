"""Independent training jobs on worker processes.

Small networks use two CPU cores poorly: one process with two threads trains the student at about 440 patches/s
on the study's machine, two processes of one thread each at about 290 each (``ttl benchmark --training --threads 1``,
run twice at once; ``docs/measurements/parallel_jobs``). Notebook 04's runs are independent once their learning rate
is known, so :func:`run_jobs` runs them side by side: ``workers`` forked processes, each with ``threads`` threads.

Every job seeds itself and runs with the same thread count whichever worker takes it, so its numbers do not depend
on the schedule: only on the plan (:func:`worker_plan`, recorded with the results). On a GPU, or with one worker, the
jobs run one after the other in this process.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence

import torch

__all__ = ["available_cores", "worker_plan", "run_jobs"]

_JOB: Callable[..., Any] | None = None  # the function a forked worker runs (inherited, never pickled)
_THREADS = 1


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def worker_plan(workers: int, device: str | torch.device) -> dict[str, int]:
    """``{"workers", "threads"}`` for a preset's ``f_workers``: 0 (auto) is two workers on a CPU with at least two
    cores, one elsewhere (a GPU runs one job at a time); each worker gets an equal share of the cores. Workers are
    forked, so only Linux and other POSIX systems but macOS get more than one."""
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    cores = available_cores()
    if workers < 0:
        raise ValueError(f"workers={workers}: use 0 (auto), 1 (one job at a time) or a number of processes")
    forkable = os.name == "posix" and sys.platform != "darwin"  # macOS: forking a process that ran torch is unsafe
    if dev.type != "cpu" or mp.get_start_method(allow_none=True) not in (None, "fork") or not forkable:
        return {"workers": 1, "threads": torch.get_num_threads()}
    n = (2 if cores >= 2 else 1) if workers == 0 else min(workers, cores)
    if n <= 1:
        return {"workers": 1, "threads": torch.get_num_threads()}
    return {"workers": n, "threads": max(1, cores // n)}


def _call(args: tuple) -> tuple[Any, float]:
    torch.set_num_threads(_THREADS)
    t = time.perf_counter()
    assert _JOB is not None
    return _JOB(*args), time.perf_counter() - t


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], plan: dict[str, int], desc: str = "jobs",
             progress: bool = True, label: Callable[[tuple], str] = str) -> list[Any]:
    """``[fn(*job) for job in jobs]``, run by ``plan``'s workers (:func:`worker_plan`) in the order given (put the
    longest first). ``fn`` may be a closure: workers are forked and inherit it. A progress bar counts finished jobs
    (workers print nothing). The first failure (or an interrupt) stops the other workers and is raised here; a
    killed training run resumes from its checkpoints like any other."""
    from .progress import progress_bar

    jobs = list(jobs)
    if plan["workers"] <= 1 or not jobs:
        return [fn(*j) for j in jobs]
    global _JOB, _THREADS
    _JOB, _THREADS = fn, plan["threads"]
    results: list[Any] = [None] * len(jobs)
    pbar = progress_bar(total=len(jobs), desc=f"{desc} ({plan['workers']} workers x {plan['threads']} thread)",
                        disable=not progress)
    pool = ProcessPoolExecutor(plan["workers"], mp_context=mp.get_context("fork"))
    failed = True
    try:
        pending = {pool.submit(_call, j): i for i, j in enumerate(jobs)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                i = pending.pop(f)
                results[i], seconds = f.result()
                pbar.update(1)
                if progress:
                    print(f"  done: {label(jobs[i])} ({seconds:.0f} s)", flush=True)
        failed = False
    finally:
        pbar.close()
        _JOB = None
        if failed:  # a job failed or the run was interrupted: stop the others now (their checkpoints stay to resume)
            workers = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for w in workers:
                w.terminate()
        else:
            pool.shutdown()
    return results
