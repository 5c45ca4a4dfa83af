"""Serve's autoscaling policy for ``--workers auto``: replicas for the calls at the keepers.

The web process calls each replica's keeper actor directly (``replica.py``), so Serve's own
count of a replica's ongoing requests stays at zero. Each replica reports instead the calls at
its keeper (``ModelReplica.record_autoscaling_stats``: running and waiting, averaged by Serve
over ``look_back_period_s``), and this policy asks for as many replicas as keep that at
``target_ongoing_requests`` per replica; Serve applies ``min_replicas``, ``max_replicas`` and the
up- and downscale delays.

Serve sends this function to its controller by value (cloudpickle), so this module imports
nothing of winserve: the head node need not have it installed for the controller to run it.
"""

from __future__ import annotations

from typing import Any


def scale_on_calls(ctx: Any) -> tuple[float, dict[str, Any]]:
    calls = (ctx.aggregated_metrics or {}).get("calls") or {}
    if not calls:  # no report yet (replicas starting): keep what there is
        return float(ctx.current_num_replicas), {}
    return sum(calls.values()) / ctx.config.get_target_ongoing_requests(), {}
