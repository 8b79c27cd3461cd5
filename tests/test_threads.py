"""vae_from_scratch.threads: the thread policy (cores - 1, at least 1) and who overrides it."""

import os
import subprocess
import sys

import pytest
import torch

from vae_from_scratch import threads


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (3, 2), (16, 15)])
def test_policy_leaves_one_core_free(cores, expected):
    assert threads.default_threads(cores) == expected


def test_policy_refuses_zero_cores():
    with pytest.raises(ValueError, match="at least 1"):
        threads.default_threads(0)


def test_order_argument_then_env_then_omp_then_policy(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    assert threads.resolve_threads(environ={}) == 7
    assert threads.resolve_threads(environ={"OMP_NUM_THREADS": "3"}) is None      # respected as is
    env = {"OMP_NUM_THREADS": "3", threads.ENV_VAR: "5"}
    assert threads.resolve_threads(environ=env) == 5
    assert threads.resolve_threads(2, environ=env) == 2
    assert threads.resolve_threads("auto", environ=env) == 7
    assert threads.resolve_threads(environ={threads.ENV_VAR: "off"}) is None


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5", ""])
def test_bad_values_get_a_clear_error(bad):
    with pytest.raises(ValueError, match="positive integer, 'auto' or 'off'"):
        threads.parse_threads(bad)


def test_configure_sets_torch_threads_and_restores():
    before = torch.get_num_threads()
    try:
        assert threads.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
        assert threads.configure_threads("off") is None
        assert torch.get_num_threads() == 1          # 'off' leaves the current setting alone
    finally:
        torch.set_num_threads(before)


def _threads_after_import(env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", threads.ENV_VAR)}
    env.update(env_extra)
    code = ("import vae_from_scratch.torch, torch, threadpoolctl; "
            "blas = [i['num_threads'] for i in threadpoolctl.threadpool_info() "
            "if i['user_api'] == 'blas']; print(torch.get_num_threads(), min(blas or [0]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return [int(v) for v in out.stdout.split()]


def test_importing_the_torch_backend_applies_the_policy():
    torch_n, blas_n = _threads_after_import({})
    assert torch_n == threads.default_threads()
    assert blas_n in (0, threads.default_threads())      # 0: no BLAS library reported


def test_environment_variable_overrides_the_policy():
    torch_n, _ = _threads_after_import({threads.ENV_VAR: "3"})
    assert torch_n == 3


def test_evaluation_workers_use_every_core_unless_the_user_chose(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 6)
    assert threads.evaluation_workers(environ={}) == 6  # not the policy's 5: workers never wait
    assert threads.evaluation_workers(3, environ={}) == 3
    assert threads.evaluation_workers(environ={threads.ENV_VAR: "2"}) == 2
    assert threads.evaluation_workers(environ={threads.ENV_VAR: "off"}) == 6
    assert threads.evaluation_workers(environ={"OMP_NUM_THREADS": "4"}) == 4
    with pytest.raises(ValueError, match="positive integer"):
        threads.evaluation_workers("0", environ={})
