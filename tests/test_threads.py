"""torch's CPU threads fitted to the idle cores (automl.threads)."""

from __future__ import annotations

import os

import pytest
import torch

from automl import threads


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_idle_cpus_reads_this_process_cores():
    idle = threads.idle_cpus(0.05)
    if idle is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= idle <= len(os.sched_getaffinity(0)) + 1e-9


def test_a_busy_core_takes_a_thread_away_and_says_so(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    said: list[str] = []
    assert threads.fit_threads(said.append, idle=0.9) == 1 and torch.get_num_threads() == 1
    cpus = len(os.sched_getaffinity(0))
    assert said == [f"note: other work keeps {cpus - 0.9:.1f} of this process's {cpus} CPUs busy; torch runs on 1 "
                    "thread(s) instead of 2 (its threads wait for each other at every op, which beside other work "
                    "can make a step many times slower); OMP_NUM_THREADS=N chooses the count"]
    torch.set_num_threads(2)
    assert threads.fit_threads(said.append, idle=1.6) is None and torch.get_num_threads() == 2  # idle enough
    assert threads.fit_threads(said.append, idle=0.0) == 1  # never below one thread
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    assert threads.fit_threads(said.append, idle=0.0) is None and torch.get_num_threads() == 2  # the user's count


def test_proc_stat_that_cannot_be_read_changes_nothing(monkeypatch, restore_threads):
    monkeypatch.setattr(threads, "STAT", "/nonexistent/stat")
    assert threads.idle_cpus(0.01) is None
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    assert threads.fit_threads(lambda m: None) is None and torch.get_num_threads() == 2
