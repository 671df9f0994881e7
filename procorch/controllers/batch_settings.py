"""The batch controllers' settings: every duration in one place, Kubernetes' defaults.

``procorch up`` builds them from the environment (:meth:`BatchSettings.from_env`), so that a
test suite or an impatient user can shorten the Job back-off without a flag per duration:

=================================  =====================================================
``PROCORCH_JOB_BACKOFF``           first delay before a failed Job pod is replaced (s)
``PROCORCH_JOB_BACKOFF_MAX``       the cap the delay doubles up to (s)
=================================  =====================================================

Pure data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class BatchSettings:
    job_backoff: float = 10.0
    """After a Job's pod fails, its replacement waits this long; the delay doubles with each
    failure since the last success (Kubernetes' ``DefaultJobPodFailureBackOff``)..."""
    job_backoff_max: float = 360.0
    """...up to this cap (``MaxJobPodFailureBackOff``, 6 minutes)."""
    job_workers: int = 5
    """Jobs reconciled at once (kube-controller-manager's ``--concurrent-job-syncs``)."""
    cronjob_workers: int = 5
    """CronJobs reconciled at once (``--concurrent-cron-job-syncs``)."""
    ttl_workers: int = 5
    """Finished Jobs checked for ``ttlSecondsAfterFinished`` at once."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BatchSettings:
        """Defaults, overridden by ``PROCORCH_JOB_BACKOFF`` and ``PROCORCH_JOB_BACKOFF_MAX``."""
        env = os.environ if environ is None else environ
        defaults = cls()
        return replace(
            defaults,
            job_backoff=_seconds(env, "PROCORCH_JOB_BACKOFF", defaults.job_backoff),
            job_backoff_max=_seconds(env, "PROCORCH_JOB_BACKOFF_MAX", defaults.job_backoff_max),
        )


def _seconds(env: Mapping[str, str], var: str, default: float) -> float:
    raw = env.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{var} must be a number of seconds, not {raw!r}") from exc
    if value < 0:
        raise ValueError(f"{var} must not be negative, not {raw!r}")
    return value
