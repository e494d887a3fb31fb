"""How the supervisor sizes the math libraries' thread pools of its workers."""

from __future__ import annotations

from prebake.server.supervisor import THREAD_VARS, share_cores, usable_cpus


def test_several_workers_share_the_cpus() -> None:
    """16 CPUs and 4 workers: each worker's OpenMP, MKL and OpenBLAS get 4 threads."""
    environ: dict[str, str] = {}
    assert share_cores(4, environ, cpus=16) == 4
    assert environ == {name: "4" for name in THREAD_VARS}


def test_more_workers_than_cpus_still_get_one_thread() -> None:
    environ: dict[str, str] = {}
    assert share_cores(8, environ, cpus=2) == 1
    assert environ["OMP_NUM_THREADS"] == "1"


def test_one_worker_keeps_every_core() -> None:
    environ: dict[str, str] = {}
    assert share_cores(1, environ, cpus=16) is None
    assert environ == {}


def test_a_users_setting_wins() -> None:
    """Any of the variables set by the user leaves all of them as they are."""
    environ = {"MKL_NUM_THREADS": "7"}
    assert share_cores(4, environ, cpus=16) is None
    assert environ == {"MKL_NUM_THREADS": "7"}


def test_usable_cpus_is_within_the_affinity() -> None:
    import os

    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))
