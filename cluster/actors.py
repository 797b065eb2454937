"""Named actors of a run, found by name rather than passed as handles.

An actor handle given to another actor's constructor is an argument held in the object store: when
that actor restarts (its process died, its node was lost), Ray cannot always bring the argument back,
and the restart fails (ray-project/ray issue 53727; Ray warns "has constructor arguments in the object
store and max_restarts > 0"). So the run's shared actors (the RaterJournal, the GovernorActor) get a
name unique to the run, the actors that restart (raters, writers) are given that name, a plain string,
and look the handle up each time their process starts.
"""

from __future__ import annotations

import uuid

import ray


def start_named(actor_class, kind: str, *args, **kwargs) -> tuple[object, str]:
    """Start `actor_class` (a @ray.remote class) under a new name "srb-KIND-<hex>" in the job's
    namespace; returns (its handle, its name). The actor lives as long as the driver's handle does."""
    name = f"srb-{kind}-{uuid.uuid4().hex[:12]}"
    return actor_class.options(name=name).remote(*args, **kwargs), name


def lookup(name: str | None):
    """The handle of the named actor `name` (started by `start_named` in this job), or None for None.
    Raises ValueError when no such actor lives."""
    return ray.get_actor(name) if name else None
