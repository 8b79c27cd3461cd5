"""How many CPU threads torch, and the BLAS library under NumPy, may use.

The policy: **one thread fewer than the usable cores, and at least one.** Torch's default (one thread
per core) is the fastest setting on a quiet machine, but its threads meet at a barrier after every
parallel operation, so when any other busy process holds one core, every operation waits for the
thread that lost its core: on a 2-core machine a chapter then ran more than ten times slower (issue
"Speed a reader can count on", measured with one competing process). Leaving one core free removes
that collapse; on a quiet 2-core machine the single thread costs about 8% on chapter 5 (40 s against
37 s), and on a machine with many cores almost nothing. ``benchmarks/bench_contention.py`` measures
both ratios.

The user decides, in this order:

1. the argument of :func:`configure_threads` (the CLI's ``--threads``);
2. the environment variable ``VAE_FROM_SCRATCH_THREADS``: a positive integer, or ``auto`` (the
   policy), or ``off`` (leave torch's and the BLAS library's own defaults alone);
3. ``OMP_NUM_THREADS``, when set, is respected as it is (torch and OpenBLAS already read it);
4. the policy above.

Importing ``vae_from_scratch.torch`` or ``vae_from_scratch.numpy`` applies the choice once.
"""

import os

ENV_VAR = "VAE_FROM_SCRATCH_THREADS"


def usable_cores():
    """Cores this process may run on (its CPU affinity where the OS reports it, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(cores=None):
    """The policy: ``max(1, cores - 1)`` threads, leaving one core to whatever else runs."""
    cores = usable_cores() if cores is None else int(cores)
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    return max(1, cores - 1)


def parse_threads(value, source=ENV_VAR):
    """``None`` for ``off``, the policy for ``auto``, else a positive int; ``ValueError`` otherwise."""
    text = str(value).strip().lower()
    if text == "off":
        return None
    if text == "auto":
        return default_threads()
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{source} must be a positive integer, 'auto' or 'off', got {value!r}")
    return n


def resolve_threads(n=None, environ=None):
    """The number of threads to use (``None``: leave the libraries' defaults), by the order above."""
    environ = os.environ if environ is None else environ
    if n is not None:
        return parse_threads(n, source="threads")
    if environ.get(ENV_VAR, "").strip():
        return parse_threads(environ[ENV_VAR])
    if environ.get("OMP_NUM_THREADS", "").strip():
        return None
    return default_threads()


def evaluation_workers(n=None, environ=None):
    """Threads for the importance-sampled evaluation (:func:`vae_from_scratch.torch.evaluation.importance_log_likelihood`):
    the number the user chose (``n``, then ``VAE_FROM_SCRATCH_THREADS``, then ``OMP_NUM_THREADS``),
    else **every usable core**. The policy above leaves a core free because torch's threads wait
    for each other after every operation; the evaluation's workers never wait for each other (each
    takes the next block), so a core lost to another process costs only that core's share."""
    environ = os.environ if environ is None else environ
    if n is not None or environ.get(ENV_VAR, "").strip():
        chosen = resolve_threads(n, environ)
        return usable_cores() if chosen is None else chosen
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) >= 1:
        return int(omp)
    return usable_cores()


def configure_threads(n=None, torch=True):
    """Apply :func:`resolve_threads` to torch's intra-op pool (if ``torch``) and to the BLAS library
    (through threadpoolctl, installed with scikit-learn). Returns the number applied, or ``None``."""
    threads = resolve_threads(n)
    if threads is None:
        return None
    if torch:
        import torch as _torch

        if _torch.get_num_threads() != threads:
            _torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return threads
    threadpool_limits(limits=threads, user_api="blas")
    return threads
