"""The scheduler: binds pending pods to nodes, following kube-scheduler.

* :mod:`.settings`: :class:`SchedulerSettings`, the tunable durations and limits;
* :mod:`.resources`: what a pod requests and a node offers, as integers;
* :mod:`.cache`: each node with the pods bound (or assumed bound) to it;
* :mod:`.filters`: which nodes may take a pod, and kube-scheduler's words for why not;
* :mod:`.scoring`: which of those is best;
* :mod:`.queue`: which pending pod goes next, and when a failed one is retried;
* :mod:`.scheduler`: :class:`Scheduler`, the loop that ties them to the API.

Only the last one does I/O. The scheduler imports ``procorch.api``, ``procorch.kit``,
``procorch.client`` and ``procorch.reconcile``, nothing else of procorch.
"""

from procorch.scheduler.scheduler import Scheduler
from procorch.scheduler.settings import SchedulerSettings

__all__ = ["Scheduler", "SchedulerSettings"]
