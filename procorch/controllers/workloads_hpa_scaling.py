"""How far an HPA may move at once: stabilization windows and scaling policies.

After Kubernetes' ``horizontal.go``. Every recommendation is remembered (per HPA) with its
time. Scaling down follows the highest recommendation of the scale-down stabilization window
(``behavior.scaleDown.stabilizationWindowSeconds``, or the controller's 300 s when unset),
scaling up the lowest of the scale-up window (0 s by default), so that a brief dip or spike
does not make replicas flap. Then the policies cap the change per period (``Pods``/``Percent``,
``selectPolicy`` Max/Min/Disabled), counting the scale events the controller itself made in
each policy's period; without ``behavior`` the legacy cap applies (at most double, or 4, per
step). Each step reports the AbleToScale and ScalingLimited reasons Kubernetes reports.

Concurrency: one reconcile per HPA at a time; state is keyed per HPA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass
class _Stamped:
    value: int
    at: float
    outdated: bool = False


@dataclass
class Decision:
    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limited_reason: str
    limited_message: str


@dataclass
class _State:
    recommendations: list[_Stamped] = field(default_factory=list)
    scale_up: list[_Stamped] = field(default_factory=list)
    scale_down: list[_Stamped] = field(default_factory=list)


def _period_change(events: list[_Stamped], period: float, now: float) -> int:
    return sum(e.value for e in events if e.at > now - period)


def _scale_up_limit(current: int, state: _State, rules: Obj, now: float) -> int:
    policy = rules.get("selectPolicy") or "Max"
    if policy == "Disabled":
        return current
    pick: Callable[[int, int], int] = min if policy == "Min" else max
    result = 2**31 - 1 if policy == "Min" else -(2**31)
    for p in rules.get("policies") or []:
        period = float(p.get("periodSeconds") or 0)
        start = (
            current
            - _period_change(state.scale_up, period, now)
            + _period_change(state.scale_down, period, now)
        )
        if p.get("type") == "Pods":
            proposed = start + int(p.get("value") or 0)
        else:
            proposed = math.ceil(start * (1 + int(p.get("value") or 0) / 100))
        result = pick(result, proposed)
    return result


def _scale_down_limit(current: int, state: _State, rules: Obj, now: float) -> int:
    policy = rules.get("selectPolicy") or "Max"
    if policy == "Disabled":
        return current
    pick: Callable[[int, int], int] = max if policy == "Min" else min
    result = -(2**31) if policy == "Min" else 2**31 - 1
    for p in rules.get("policies") or []:
        period = float(p.get("periodSeconds") or 0)
        start = (
            current
            - _period_change(state.scale_up, period, now)
            + _period_change(state.scale_down, period, now)
        )
        if p.get("type") == "Pods":
            proposed = start - int(p.get("value") or 0)
        else:
            proposed = int(start * (1 - int(p.get("value") or 0) / 100))
        result = pick(result, proposed)
    return result


class Scaling:
    """Recommendations and scale events of every HPA this controller handles."""

    def __init__(
        self, *, downscale_window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.downscale_window = downscale_window
        self._clock = clock
        self._states: dict[Any, _State] = {}

    def forget(self, key: Any) -> None:
        self._states.pop(key, None)

    def _state(self, key: Any) -> _State:
        return self._states.setdefault(key, _State())

    def record_initial(self, key: Any, current: int) -> None:
        state = self._state(key)
        if not state.recommendations:
            state.recommendations.append(_Stamped(current, self._clock()))

    def _remember(self, state: _State, value: int, old_index: int | None, now: float) -> None:
        if old_index is not None:
            state.recommendations[old_index] = _Stamped(value, now)
        else:
            state.recommendations.append(_Stamped(value, now))

    def normalize(
        self,
        key: Any,
        *,
        behavior: Obj | None,
        current: int,
        desired: int,
        min_replicas: int,
        max_replicas: int,
    ) -> Decision:
        if behavior is None:
            return self._legacy(key, current, desired, min_replicas, max_replicas)
        return self._with_behavior(key, behavior, current, desired, min_replicas, max_replicas)

    def _legacy(
        self, key: Any, current: int, desired: int, min_replicas: int, max_replicas: int
    ) -> Decision:
        now = self._clock()
        state = self._state(key)
        highest = desired
        old: int | None = None
        for i, rec in enumerate(state.recommendations):
            if rec.at < now - self.downscale_window:
                old = i
            elif rec.value > highest:
                highest = rec.value
        self._remember(state, desired, old, now)
        if highest != desired:
            able = (
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest "
                "recent recommendation",
            )
        else:
            able = ("ReadyForNewScale", "recommended size matches current size")
        up_limit = max(2 * current, 4)
        if max_replicas > up_limit:
            top, reason, message = (
                up_limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        else:
            top, reason, message = (
                max_replicas,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        if highest < min_replicas:
            final, reason, message = (
                min_replicas,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        elif highest > top:
            final = top
        else:
            final, reason, message = (
                highest,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        return Decision(final, *able, final != highest, reason, message)

    def _with_behavior(
        self,
        key: Any,
        behavior: Obj,
        current: int,
        desired: int,
        min_replicas: int,
        max_replicas: int,
    ) -> Decision:
        now = self._clock()
        state = self._state(key)
        up_rules = behavior.get("scaleUp") or {}
        down_rules = behavior.get("scaleDown") or {}
        up_window = float(up_rules.get("stabilizationWindowSeconds") or 0)
        down_window = down_rules.get("stabilizationWindowSeconds")
        down_window = self.downscale_window if down_window is None else float(down_window)
        up_rec = down_rec = desired
        old: int | None = None
        for i, rec in enumerate(state.recommendations):
            if rec.at > now - up_window:
                up_rec = min(rec.value, up_rec)
            if rec.at > now - down_window:
                down_rec = max(rec.value, down_rec)
            if rec.at < now - up_window and rec.at < now - down_window:
                old = i
        stabilized = min(max(current, up_rec), down_rec)
        self._remember(state, desired, old, now)
        if stabilized != desired:
            if desired >= current:
                able = (
                    "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest "
                    "recent recommendation",
                )
            else:
                able = (
                    "ScaleDownStabilized",
                    "recent recommendations were higher than current one, applying the highest "
                    "recent recommendation",
                )
        else:
            able = ("ReadyForNewScale", "recommended size matches current size")
        final, reason, message = (
            stabilized,
            "DesiredWithinRange",
            ("the desired count is within the acceptable range"),
        )
        if stabilized > current:
            limit = max(_scale_up_limit(current, state, up_rules, now), current)
            if max_replicas > limit:
                top, why, text = (
                    limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            else:
                top, why, text = (
                    max_replicas,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            if stabilized > top:
                final, reason, message = top, why, text
        elif stabilized < current:
            limit = min(_scale_down_limit(current, state, down_rules, now), current)
            if min_replicas < limit:
                bottom, why, text = (
                    limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            else:
                bottom, why, text = (
                    min_replicas,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            if stabilized < bottom:
                final, reason, message = bottom, why, text
        return Decision(final, *able, final != stabilized, reason, message)

    def record_scale(self, key: Any, behavior: Obj | None, before: int, after: int) -> None:
        """Remember a scale event the controller made (only with ``behavior``, as Kubernetes)."""
        if behavior is None or before == after:
            return
        now = self._clock()
        state = self._state(key)
        up = after > before
        rules = (behavior.get("scaleUp") if up else behavior.get("scaleDown")) or {}
        events = state.scale_up if up else state.scale_down
        longest = max(
            (float(p.get("periodSeconds") or 0) for p in rules.get("policies") or []), default=0
        )
        for e in events:
            if e.at <= now - longest:
                e.outdated = True
        change = abs(after - before)
        for i, e in enumerate(events):
            if e.outdated:
                events[i] = _Stamped(change, now)
                return
        events.append(_Stamped(change, now))
