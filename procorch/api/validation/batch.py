"""Job and CronJob (batch/v1): counts and limits, completion modes, pod failure policy,
generated selectors, the pod template's restart policy, immutable fields on update; cron
schedules and time zones.

Mirrors Kubernetes' batch validation. Schedules are read by croniter (:func:`cron_iter`, the
one place that decides how, shared with the CronJob controller): five fields or a macro as
Kubernetes accepts them and, a procorch extension, a sixth field for seconds that comes
*first*, as croniter reads it with ``second_at_beginning`` (and Quartz, Spring and robfig/cron
``WithSeconds`` do): ``*/5 * * * * *`` runs every 5 seconds.
Pure data (time zones are read from the tz database, which ``zoneinfo`` caches).
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from typing import Any

from croniter import croniter

from procorch.api.errors import duplicate, invalid, not_supported, required, too_long
from procorch.api.validation import formats
from procorch.api.validation._base import (
    Causes,
    as_dict,
    as_int,
    as_list,
    as_str,
    child,
    immutable,
    index,
    invalid_omitted,
    items,
    nonnegative,
    present,
    too_many,
)
from procorch.api.validation.meta import (
    name_is_dns_subdomain,
    selector_is_valid,
    selector_matches,
    validate_label_selector,
    validate_object_meta,
    validate_qualified_name,
)
from procorch.api.validation.podspec import template_labels, validate_pod_template

MAX_PARALLELISM_INDEXED = 100_000
MAX_FAILED_INDEXES = 100_000
COMPLETIONS_SOFT_LIMIT = 100_000
PARALLELISM_LIMIT_HIGH_COMPLETIONS = 10_000
MAX_FAILED_INDEXES_HIGH_COMPLETIONS = 10_000
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]
_EXIT_OPERATORS = ["In", "NotIn"]
_CONDITION_STATUSES = ["False", "True", "Unknown"]
_TZ_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")
# The labels Kubernetes puts on a Job's pods when it generates the selector.
CONTROLLER_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def _quoted_list(values: list[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _pod_failure_policy(spec: dict[str, Any], path: str) -> Causes:
    causes: Causes = []
    rules = as_list(as_dict(spec.get("podFailurePolicy")).get("rules"))
    rules_path = child(path, "rules")
    if len(rules) > 20:
        causes.append(too_many(rules_path, len(rules), 20))
    template_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    names = {
        as_str(c.get("name"))
        for key in ("containers", "initContainers")
        for _, c in items(template_spec.get(key))
    }
    for i, rule in items(rules):
        rule_path = index(rules_path, i)
        action = as_str(rule.get("action"))
        if not action:
            causes.append(
                required(child(rule_path, "action"), f"valid values: {_quoted_list(_ACTIONS)}")
            )
        elif action == "FailIndex":
            if not present(spec, "backoffLimitPerIndex"):
                causes.append(
                    invalid(
                        child(rule_path, "action"),
                        action,
                        "requires the backoffLimitPerIndex to be set",
                    )
                )
        elif action not in _ACTIONS:
            causes.append(not_supported(child(rule_path, "action"), action, _ACTIONS))
        on_exit = rule.get("onExitCodes")
        on_conditions = as_list(rule.get("onPodConditions"))
        if on_exit is not None:
            causes += _on_exit_codes(as_dict(on_exit), names, child(rule_path, "onExitCodes"))
        if len(on_conditions) > 20:
            causes.append(too_many(child(rule_path, "onPodConditions"), len(on_conditions), 20))
        for j, pattern in items(on_conditions):
            pattern_path = index(child(rule_path, "onPodConditions"), j)
            causes += validate_qualified_name(
                as_str(pattern.get("type")), child(pattern_path, "type")
            )
            status = as_str(pattern.get("status"))
            if not status:
                causes.append(
                    required(
                        child(pattern_path, "status"),
                        f"valid values: {_quoted_list(_CONDITION_STATUSES)}",
                    )
                )
            elif status not in _CONDITION_STATUSES:
                causes.append(
                    not_supported(child(pattern_path, "status"), status, _CONDITION_STATUSES)
                )
        if on_exit is not None and on_conditions:
            causes.append(
                invalid_omitted(
                    rule_path, "specifying both OnExitCodes and OnPodConditions is not supported"
                )
            )
        if on_exit is None and not on_conditions:
            causes.append(
                invalid_omitted(
                    rule_path, "specifying one of OnExitCodes and OnPodConditions is required"
                )
            )
    return causes


def _on_exit_codes(req: dict[str, Any], names: set[str], path: str) -> Causes:
    causes: Causes = []
    operator = as_str(req.get("operator"))
    if not operator:
        causes.append(
            required(child(path, "operator"), f"valid values: {_quoted_list(_EXIT_OPERATORS)}")
        )
    elif operator not in _EXIT_OPERATORS:
        causes.append(not_supported(child(path, "operator"), operator, _EXIT_OPERATORS))
    if present(req, "containerName") and as_str(req["containerName"]) not in names:
        causes.append(
            invalid(
                child(path, "containerName"),
                req["containerName"],
                "must be one of the container or initContainer names in the pod template",
            )
        )
    values = [as_int(v) for v in as_list(req.get("values"))]
    values_path = child(path, "values")
    if not values:
        causes.append(invalid(values_path, [], "at least one value is required"))
    elif len(values) > 255:
        causes.append(too_many(values_path, len(values), 255))
    seen: set[int | None] = set()
    for j, value in enumerate(values):
        if operator == "In" and value == 0:
            causes.append(invalid(index(values_path, j), 0, "must not be 0 for the In operator"))
        if value is not None and value in seen:
            causes.append(duplicate(index(values_path, j), value))
        seen.add(value)
    numbers = [v for v in values if v is not None]
    if numbers != sorted(numbers):
        causes.append(invalid(values_path, numbers, "must be ordered"))
    return causes


def validate_job_spec(spec: dict[str, Any], path: str) -> Causes:
    """Kubernetes' validateJobSpec: everything but the selector."""
    causes: Causes = []
    for field in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ):
        causes += nonnegative(child(path, field), spec.get(field))
    parallelism = as_int(spec.get("parallelism"))
    completions = as_int(spec.get("completions"))
    max_failed = as_int(spec.get("maxFailedIndexes"))
    per_index = present(spec, "backoffLimitPerIndex")
    if present(spec, "maxFailedIndexes") and not per_index:
        causes.append(
            required(child(path, "backoffLimitPerIndex"), "when maxFailedIndexes is specified")
        )
    if present(spec, "managedBy"):
        managed_by = as_str(spec["managedBy"])
        if not managed_by:
            causes.append(required(child(path, "managedBy")))
        for value, msg in formats.domain_prefixed_path_errors(managed_by) if managed_by else []:
            causes.append(invalid(child(path, "managedBy"), value, msg))
        if len(managed_by) > 63:
            causes.append(too_long(child(path, "managedBy"), managed_by, 63))
    mode = spec.get("completionMode")
    indexed = mode == "Indexed"
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            causes.append(
                not_supported(child(path, "completionMode"), mode, ["NonIndexed", "Indexed"])
            )
        if indexed:
            if not present(spec, "completions"):
                causes.append(
                    required(child(path, "completions"), "when completion mode is Indexed")
                )
            if parallelism is not None and parallelism > MAX_PARALLELISM_INDEXED:
                causes.append(
                    invalid(
                        child(path, "parallelism"),
                        parallelism,
                        f"must be less than or equal to {MAX_PARALLELISM_INDEXED} "
                        "when completion mode is Indexed",
                    )
                )
            if completions is not None and max_failed is not None and max_failed > completions:
                causes.append(
                    invalid(
                        child(path, "maxFailedIndexes"),
                        max_failed,
                        "must be less than or equal to completions",
                    )
                )
            if max_failed is not None and max_failed > MAX_FAILED_INDEXES:
                causes.append(
                    invalid(
                        child(path, "maxFailedIndexes"),
                        max_failed,
                        f"must be less than or equal to {MAX_FAILED_INDEXES}",
                    )
                )
            if completions is not None and completions > COMPLETIONS_SOFT_LIMIT and per_index:
                if max_failed is None:
                    causes.append(
                        required(
                            child(path, "maxFailedIndexes"),
                            f"must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}",
                        )
                    )
                if parallelism is not None and parallelism > PARALLELISM_LIMIT_HIGH_COMPLETIONS:
                    causes.append(
                        invalid(
                            child(path, "parallelism"),
                            parallelism,
                            "must be less than or equal to "
                            f"{PARALLELISM_LIMIT_HIGH_COMPLETIONS} when completions "
                            f"are above {COMPLETIONS_SOFT_LIMIT} and used with "
                            "backoff limit per index",
                        )
                    )
    if not indexed:
        for field in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if present(spec, field):
                causes.append(
                    invalid(child(path, field), spec[field], "requires indexed completion mode")
                )
    if present(spec, "podFailurePolicy"):
        causes += _pod_failure_policy(spec, child(path, "podFailurePolicy"))
    if present(spec, "successPolicy") and not indexed:
        causes.append(
            invalid(
                child(path, "successPolicy"),
                spec["successPolicy"],
                "requires indexed completion mode",
            )
        )
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        allowed = (
            ["Failed"] if present(spec, "podFailurePolicy") else ["Failed", "TerminatingOrFailed"]
        )
        if replacement not in allowed:
            causes.append(not_supported(child(path, "podReplacementPolicy"), replacement, allowed))
    template_path = child(path, "template")
    causes += validate_pod_template(spec.get("template"), template_path)
    restart = as_str(as_dict(as_dict(spec.get("template")).get("spec")).get("restartPolicy"))
    restart_path = child(template_path, "spec", "restartPolicy")
    if restart in ("Always", ""):
        causes.append(required(restart_path, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        causes.append(not_supported(restart_path, restart, ["OnFailure", "Never"]))
    elif present(spec, "podFailurePolicy") and restart != "Never":
        causes.append(
            invalid(
                restart_path,
                restart,
                'only "Never" is supported when podFailurePolicy is specified',
            )
        )
    return causes


def _generated_selector(obj: dict[str, Any]) -> Causes:
    spec = as_dict(obj.get("spec"))
    if spec.get("manualSelector") is True or spec.get("selector") is None:
        return []
    meta = as_dict(obj.get("metadata"))
    uid = as_str(meta.get("uid"))
    if not uid:
        # The server validates before it assigns a uid; the generated labels are checked
        # once it has one.
        return []
    name = as_str(meta.get("name"))
    labels = template_labels(spec.get("template"))
    labels_path = "spec.template.metadata.labels"
    causes: Causes = []
    for label_key, expected in (
        (CONTROLLER_UID_LABELS[1], uid),
        (JOB_NAME_LABELS[1], name),
        (CONTROLLER_UID_LABELS[0], uid),
        (JOB_NAME_LABELS[0], name),
    ):
        if label_key not in labels:
            causes.append(required(f"{labels_path}[{label_key}]", f"must be '{expected}'"))
        elif labels[label_key] != expected:
            causes.append(invalid(f"{labels_path}[{label_key}]", labels, f"must be '{expected}'"))
    expected_labels = {
        CONTROLLER_UID_LABELS[0]: uid,
        JOB_NAME_LABELS[0]: name,
        CONTROLLER_UID_LABELS[1]: uid,
        JOB_NAME_LABELS[1]: name,
    }
    if selector_is_valid(spec["selector"]) and not selector_matches(
        spec["selector"], expected_labels
    ):
        causes.append(invalid("spec.selector", spec["selector"], "`selector` not auto-generated"))
    return causes


def validate_job(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    causes = validate_object_meta(
        obj.get("metadata"), namespaced=True, name_fn=name_is_dns_subdomain
    )
    causes += _generated_selector(obj)
    spec = as_dict(obj.get("spec"))
    causes += validate_job_spec(spec, "spec")
    selector = spec.get("selector")
    if selector is None:
        causes.append(required("spec.selector"))
    else:
        causes += validate_label_selector(selector, "spec.selector")
    if selector is None or (
        selector_is_valid(selector)
        and not selector_matches(selector, template_labels(spec.get("template")))
    ):
        causes.append(
            invalid(
                "spec.template.metadata.labels",
                template_labels(spec.get("template")),
                "`selector` does not match template `labels`",
            )
        )
    completions = as_int(spec.get("completions"))
    name = as_str(as_dict(obj.get("metadata")).get("name"))
    if spec.get("completionMode") == "Indexed" and completions and completions > 0:
        hostname = f"{name}-{completions - 1}"
        if formats.is_dns1123_label(hostname):
            causes.append(
                invalid(
                    "metadata.name",
                    name,
                    f"will not able to create pod with invalid DNS label: {hostname}",
                )
            )
    if old is not None:
        causes += _job_update(spec, as_dict(old.get("spec")), old)
    return causes


def _job_update(spec: dict[str, Any], old_spec: dict[str, Any], old: dict[str, Any]) -> Causes:
    causes: Causes = []
    if spec.get("completions") != old_spec.get("completions"):
        # Indexed Jobs are elastic: completions may change together with parallelism.
        if spec.get("completionMode") != "Indexed":
            causes += immutable(
                "spec.completions", spec.get("completions"), old_spec.get("completions")
            )
        elif spec.get("completions") is not None and (
            spec.get("completions") != spec.get("parallelism")
        ):
            causes.append(
                invalid(
                    "spec.completions",
                    spec.get("completions"),
                    "can only be modified in tandem with spec.parallelism",
                )
            )
    causes += immutable("spec.selector", spec.get("selector"), old_spec.get("selector"))
    template = as_dict(spec.get("template"))
    old_template = as_dict(old_spec.get("template"))
    suspended_unstarted = (
        spec.get("suspend") is True
        and old_spec.get("suspend") is True
        and not as_dict(old.get("status")).get("startTime")
    )
    if suspended_unstarted:
        # A suspended Job that never ran may have its scheduling directives changed.
        template, old_template = _without_scheduling(template), _without_scheduling(old_template)
    if template != old_template:
        causes.append(invalid("spec.template", spec.get("template"), "field is immutable"))
    for field in (
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ):
        causes += immutable(child("spec", field), spec.get(field), old_spec.get(field))
    return causes


def _without_scheduling(template: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in as_dict(template.get("metadata")).items()
        if k not in ("labels", "annotations")
    }
    spec = {
        k: v
        for k, v in as_dict(template.get("spec")).items()
        if k not in ("nodeSelector", "tolerations", "schedulingGates")
    }
    affinity = {k: v for k, v in as_dict(spec.get("affinity")).items() if k != "nodeAffinity"}
    spec.pop("affinity", None)
    if affinity:
        spec["affinity"] = affinity
    return {"metadata": meta, "spec": spec}


def validate_schedule(schedule: str, path: str, *, allow_tz: bool, time_zone: Any) -> Causes:
    causes: Causes = []
    expression = schedule.strip()
    if expression.startswith(("TZ=", "CRON_TZ=")):
        zone, _, expression = expression.partition(" ")
        zone_name = zone.split("=", 1)[1]
        if _tz_problem(zone_name):
            causes.append(
                invalid(
                    path,
                    schedule,
                    f"provided bad location {zone_name}: unknown time zone {zone_name}",
                )
            )
            expression = ""
    problem = cron_problem(expression.strip()) if not causes else ""
    if problem:
        causes.append(invalid(path, schedule, problem))
    if "TZ" in schedule:
        if not allow_tz:
            causes.append(
                invalid(
                    path,
                    schedule,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                )
            )
        elif time_zone is not None:
            causes.append(
                invalid(
                    path, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"
                )
            )
    return causes


def cron_problem(expression: str) -> str:
    """Why a schedule does not parse, or "" when it does. Five fields, a macro, or (a
    procorch extension) six fields with seconds last, as croniter reads them."""
    if not expression:
        return "empty spec string"
    if expression.startswith("@"):
        return "" if expression in CRON_MACROS else f"unrecognized descriptor: {expression}"
    fields = expression.split()
    if len(fields) not in (5, 6):
        return (
            f"expected exactly 5 fields (or 6 with seconds), found {len(fields)}: "
            f"[{' '.join(fields)}]"
        )
    for field in fields:
        if any(ch in field for ch in "#LW"):
            return (
                f'failed to parse int from {field}: strconv.Atoi: parsing "{field}": invalid syntax'
            )
    try:
        cron_iter(expression)
    except (ValueError, KeyError, TypeError) as exc:
        return f"invalid schedule: {exc}"
    return ""


def has_seconds(expression: str) -> bool:
    """Whether a schedule has procorch's seconds field (six fields, seconds first)."""
    return not expression.startswith("@") and len(expression.split()) == 6


def cron_iter(expression: str, start: datetime | None = None) -> croniter:
    """A croniter over ``expression`` from ``start`` (an aware datetime in the schedule's
    zone): five fields or a macro, or six with the seconds field first."""
    return croniter(expression, start, second_at_beginning=has_seconds(expression))


def _tz_problem(name: str) -> str:
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.fullmatch(part):
            return f"unknown time zone {name}"
    if name.lower() == "local":
        return (
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
        )
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name}"
    return ""


def validate_time_zone(time_zone: Any, path: str) -> Causes:
    if time_zone is None:
        return []
    name = as_str(time_zone)
    if not name:
        return [invalid(path, time_zone, "timeZone must be nil or non-empty string")]
    problem = _tz_problem(name)
    return [invalid(path, name, problem)] if problem else []


def validate_cron_job(obj: dict[str, Any], old: dict[str, Any] | None = None) -> Causes:
    meta = as_dict(obj.get("metadata"))
    causes = validate_object_meta(meta, namespaced=True, name_fn=name_is_dns_subdomain)
    spec = as_dict(obj.get("spec"))
    old_spec = as_dict(old.get("spec")) if old is not None else None
    schedule = as_str(spec.get("schedule"))
    if not schedule:
        causes.append(required("spec.schedule"))
    else:
        allow_tz = old_spec is not None and "TZ" in as_str(old_spec.get("schedule"))
        causes += validate_schedule(
            schedule, "spec.schedule", allow_tz=allow_tz, time_zone=spec.get("timeZone")
        )
    causes += nonnegative("spec.startingDeadlineSeconds", spec.get("startingDeadlineSeconds"))
    if old_spec is None or old_spec.get("timeZone") != spec.get("timeZone"):
        causes += validate_time_zone(spec.get("timeZone"), "spec.timeZone")
    policy = as_str(spec.get("concurrencyPolicy"))
    if not policy:
        causes.append(required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        causes.append(
            not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"])
        )
    job_spec = as_dict(as_dict(spec.get("jobTemplate")).get("spec"))
    causes += validate_job_spec(job_spec, "spec.jobTemplate.spec")
    if present(job_spec, "selector"):
        causes.append(
            invalid(
                "spec.jobTemplate.spec.selector",
                job_spec["selector"],
                "`selector` will be auto-generated",
            )
        )
    if job_spec.get("manualSelector") is True:
        causes.append(not_supported("spec.jobTemplate.spec.manualSelector", True, ["nil", "false"]))
    for field in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        causes += nonnegative(child("spec", field), spec.get(field))
    name = as_str(meta.get("name"))
    if old is None and len(name) > 52:
        # The controller appends an 11-character suffix to name the Jobs it creates.
        causes.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    return causes
