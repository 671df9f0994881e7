"""Process resource limits procorch sets for itself.

:func:`raise_open_files_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start, as
Go programs do since Go 1.19 and as container runtimes set for containers: the API server,
the proxies and the pods' pipes all hold descriptors, and a soft limit of 1,024 (a common
default) is a few hundred connections. Pods started afterwards inherit the raised limit, as
containers get a high one from containerd and Docker.
"""

from __future__ import annotations

import resource

from procorch.kit.logging import get_logger

log = get_logger("kit.limits")


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one; the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = 1 << 20  # the kernel's nr_open default; "unlimited" is refused
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-files limit", soft=soft, hard=hard, error=str(exc))
        return soft
    return target
