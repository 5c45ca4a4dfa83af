"""The OpenMP threads of a scikit-learn-style model's host: one per call, as its ``n_jobs``.

::

    ModelHost._load ─► loading.single_threaded(model): n_jobs=1 (joblib's workers)
                    ─► openmp.limit(threads): every OpenMP runtime the model's libraries loaded
                       (scikit-learn's libgomp or vcomp, LightGBM's, XGBoost's) set to
                       ``threads`` (the setting intra_op_threads, else 1), torch's left to
                       its own setting (torch_model: the cores divided by the replicas)

Why: an OpenMP team waits for its slowest thread, spinning. A
HistGradientBoosting model's call used every core, and on a machine with one core busy
(the web process writing a job's rows, another program) its calls' time went from 1.1 ms to
3-5 ms at p90 and 115-239 ms at most (256 rows, 2 cores, measured); one thread: p50 1.6 ms,
p90 1.7, at most 2. A 100,000-row job of a HistGradientBoostingClassifier took 0.94-1.28 s
with a core busy against 0.69-0.75 s with one thread, and as long (0.52-0.60 s) with either
on a quiet machine, where the job's calls are made ahead of its writing; a tester's 4,000-row
job on a busy machine took 13.6 s. A user's one-row call costs the same either way (0.5 ms).
Replicas give the parallelism, as for ``n_jobs``.
"""

from __future__ import annotations

import logging

LOG = logging.getLogger("winserve.host")


def limit(threads: int) -> int:
    """Set every loaded OpenMP runtime but torch's to ``threads``; how many were set."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # scikit-learn brings it; a model without scikit-learn may not
        return 0
    try:
        runtimes = ThreadpoolController().select(user_api="openmp").lib_controllers
    except Exception:  # a runtime threadpoolctl cannot read: leave them as they are
        LOG.debug("the OpenMP runtimes could not be listed", exc_info=True)
        return 0
    chosen = [r for r in runtimes if "torch" not in str(getattr(r, "filepath", "")).lower()]
    for runtime in chosen:
        runtime.set_num_threads(threads)
    return len(chosen)
