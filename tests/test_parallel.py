"""ttl.parallel: jobs on forked CPU workers give the results of the same jobs run in order."""
import os
import time

import pytest
import torch

from ttl.parallel import available_cores, run_jobs, worker_plan

TWO = {"workers": 2, "threads": 1}


def _train(seed: int) -> torch.Tensor:
    """A few AdamW steps of a small conv net: its final weights (what a run's numbers depend on)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))
    opt = torch.optim.AdamW(net.parameters(), 1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(5):
        x = torch.rand(4, 3, 16, 16, generator=g)
        loss = (net(x) - x.flip(-1)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_results_come_back_in_job_order_and_do_not_depend_on_the_schedule():
    offset = 100  # a closure: workers are forked and inherit it
    got = run_jobs(lambda a, b: (a * b + offset, os.getpid(), torch.get_num_threads()),
                   [(k, 2) for k in range(6)], TWO, progress=False)
    assert [g[0] for g in got] == [2 * k + 100 for k in range(6)]
    assert all(g[1] != os.getpid() for g in got) and {g[2] for g in got} == {1}
    first = run_jobs(_train, [(s,) for s in (0, 1, 2)], TWO, progress=False)
    again = run_jobs(_train, [(s,) for s in (2, 0, 1)], TWO, progress=False)  # other order, other workers
    for a, b in zip(first, [again[1], again[2], again[0]]):
        assert torch.equal(a, b)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the same job in this process with the workers' thread count
    try:
        assert torch.equal(_train(1), first[1])
    finally:
        torch.set_num_threads(old)


def test_a_failing_job_raises_here_at_once_and_stops_the_other_workers():
    def job(k):
        if k == 3:
            raise ValueError(f"job {k} failed")
        time.sleep(30 if k == 0 else 0)  # a long run on the other worker must not hold the error back
        return k

    t = time.perf_counter()
    with pytest.raises(ValueError, match="job 3 failed"):
        run_jobs(job, [(k,) for k in range(5)], TWO, progress=False)
    assert time.perf_counter() - t < 15


def test_plan_one_worker_runs_in_this_process_and_cpu_auto_splits_the_cores():
    assert run_jobs(lambda: os.getpid(), [()], {"workers": 1, "threads": 2}, progress=False) == [os.getpid()]
    assert worker_plan(1, "cpu")["workers"] == 1
    auto = worker_plan(0, "cpu")
    cores = available_cores()
    assert auto["workers"] == (2 if cores >= 2 else 1)
    if auto["workers"] == 2:
        assert auto["threads"] == cores // 2
    assert worker_plan(0, "meta")["workers"] == 1  # not a CPU: one job at a time
    with pytest.raises(ValueError, match="workers=-1"):
        worker_plan(-1, "cpu")
