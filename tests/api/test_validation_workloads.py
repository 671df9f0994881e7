"""Deployment, ReplicaSet, Job and CronJob rules, on create and on update."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from procorch.api.defaults import generate_job_selector
from procorch.api.registry import apply_defaults, validate


def template(restart: str | None = None, **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "command": ["sleep", "60"]}]}
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": labels or {"app": "web"}}, "spec": spec}


def deployment(**spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(), **spec},
    }
    apply_defaults("apps/v1", "Deployment", obj)
    return obj


def causes(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [c.render() for c in validate(obj["apiVersion"], obj["kind"], obj, old=old)]


def test_realistic_deployment_is_valid() -> None:
    obj = deployment(
        replicas=3,
        minReadySeconds=5,
        selector={
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}],
        },
        template=template(app="web", tier="fe"),
    )
    assert causes(obj) == []


def test_selector_must_match_template_labels() -> None:
    obj = deployment(template=template(app="api"))
    assert causes(obj) == [
        (
            'spec.template.metadata.labels: Invalid value: {"app":"api"}: `selector` does not '
            "match template `labels`"
        )
    ]


def test_selector_is_required_and_not_empty() -> None:
    obj = deployment()
    del obj["spec"]["selector"]
    assert causes(obj) == [
        "spec.selector: Required value",
        (
            'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match '
            "template `labels`"
        ),
    ]
    obj = deployment(selector={})
    assert causes(obj) == [
        ("spec.selector: Invalid value: {}: empty selector is invalid for deployment")
    ]


def test_selector_expressions_are_validated() -> None:
    obj = deployment(selector={"matchExpressions": [{"key": "app", "operator": "In"}]})
    assert causes(obj) == [
        (
            "spec.selector.matchExpressions[0].values: Required value: must be specified when "
            "`operator` is 'In' or 'NotIn'"
        ),
        (
            'spec.selector: Invalid value: {"matchExpressions":[{"key":"app","operator":"In"}]}: '
            "invalid label selector"
        ),
    ]


def test_template_restart_policy_must_be_always() -> None:
    obj = deployment(template=template("OnFailure"))
    assert causes(obj) == [
        (
            'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: '
            '"Always"'
        )
    ]


def test_template_pod_spec_is_validated_with_template_paths() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0].pop("command")
    obj["spec"]["template"]["metadata"]["labels"]["bad key"] = "x"
    found = causes(obj)
    assert (
        "spec.template.spec.containers[0].command: Required value: procorch runs processes, "
        "not images: give the container a command (image is ignored)"
    ) in found
    assert any(c.startswith('spec.template.labels: Invalid value: "bad key"') for c in found)


def test_replicas_and_limits_must_not_be_negative() -> None:
    obj = deployment(replicas=-1, minReadySeconds=-2, revisionHistoryLimit=-3)
    assert causes(obj) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
        "spec.revisionHistoryLimit: Invalid value: -3: must be greater than or equal to 0",
    ]


def test_progress_deadline_must_exceed_min_ready_seconds() -> None:
    obj = deployment(minReadySeconds=600)
    assert causes(obj) == [
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"
    ]


def test_strategy_rules() -> None:
    obj = deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert causes(obj) == [
        (
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
            "'Recreate'"
        )
    ]
    obj = deployment(strategy={"type": "BlueGreen"})
    assert causes(obj) == [
        (
            'spec.strategy: Unsupported value: {"type":"BlueGreen"}: supported values: "Recreate", '
            '"RollingUpdate"'
        )
    ]


def test_max_surge_and_unavailable_values() -> None:
    obj = deployment(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    )
    assert causes(obj) == [
        (
            'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when '
            "`maxSurge` is 0"
        )
    ]
    obj = deployment(
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"},
        }
    )
    assert causes(obj) == [
        (
            'spec.strategy.rollingUpdate.maxSurge: Invalid value: "x": a valid percent string must '
            "be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
            "validation is '[0-9]+%')"
        ),
        (
            'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater '
            "than 100%"
        ),
    ]
    obj = deployment(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": -1, "maxUnavailable": 1}}
    )
    assert causes(obj) == [
        (
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal "
            "to 0"
        )
    ]


def test_deployment_selector_is_immutable() -> None:
    old = deployment()
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert causes(new, old) == [
        'spec.selector: Invalid value: {"matchLabels":{"app":"web","v":"2"}}: field is immutable'
    ]
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    assert causes(scaled, old) == []


def test_replica_set_rules() -> None:
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()},
    }
    apply_defaults("apps/v1", "ReplicaSet", rs)
    assert causes(rs) == []
    rs["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 10
    rs["spec"]["replicas"] = -1
    assert causes(rs) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        (
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in "
            "ReplicaSet is not Supported"
        ),
    ]


# Jobs.


def job(uid: str | None = "0f9c", **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default"},
        "spec": {"template": template("Never"), **spec},
    }
    if uid:
        obj["metadata"]["uid"] = uid
    apply_defaults("batch/v1", "Job", obj)
    generate_job_selector(obj)
    return obj


def test_realistic_job_is_valid() -> None:
    assert (
        causes(
            job(
                completions=5,
                parallelism=2,
                backoffLimit=3,
                activeDeadlineSeconds=600,
                ttlSecondsAfterFinished=60,
            )
        )
        == []
    )


def test_job_without_selector_and_uid_reports_missing_selector() -> None:
    assert causes(job(uid=None)) == [
        "spec.selector: Required value",
        (
            'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match '
            "template `labels`"
        ),
    ]


def test_job_selector_must_be_generated_unless_manual() -> None:
    obj = job()
    obj["spec"]["selector"] = {"matchLabels": {"app": "web"}}
    assert causes(obj) == [
        (
            'spec.selector: Invalid value: {"matchLabels":{"app":"web"}}: '
            "`selector` not auto-generated"
        )
    ]
    obj["spec"]["manualSelector"] = True
    assert causes(obj) == []


def test_job_restart_policy_must_be_on_failure_or_never() -> None:
    obj = job(template=template())
    assert causes(obj) == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    ]


def test_job_counts_must_not_be_negative() -> None:
    obj = job(parallelism=-1, completions=-1, backoffLimit=-1, activeDeadlineSeconds=-1)
    assert causes(obj) == [
        "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        "spec.completions: Invalid value: -1: must be greater than or equal to 0",
        "spec.activeDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
    ]


def test_indexed_job_needs_completions() -> None:
    obj = job(completionMode="Indexed", parallelism=2)
    assert causes(obj) == ["spec.completions: Required value: when completion mode is Indexed"]
    obj = job(completionMode="Sometimes")
    assert causes(obj) == [
        (
            'spec.completionMode: Unsupported value: "Sometimes": supported '
            'values: "NonIndexed", "Indexed"'
        )
    ]


def test_backoff_limit_per_index_requires_indexed_mode() -> None:
    obj = job(backoffLimitPerIndex=1)
    assert causes(obj) == [
        "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"
    ]


def test_pod_failure_policy_rules() -> None:
    obj = job(
        podFailurePolicy={
            "rules": [
                {"action": "Explode", "onExitCodes": {"operator": "In", "values": [0, 3, 2]}},
                {"action": "FailJob"},
                {
                    "action": "Ignore",
                    "onExitCodes": {"operator": "In", "values": [1], "containerName": "nope"},
                },
            ]
        }
    )
    assert causes(obj) == [
        (
            'spec.podFailurePolicy.rules[0].action: Unsupported value: "Explode": supported values: '
            '"Count", "FailIndex", "FailJob", "Ignore"'
        ),
        (
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 "
            "for the In operator"
        ),
        (
            "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: [0,3,2]: must be "
            "ordered"
        ),
        (
            "spec.podFailurePolicy.rules[1]: Invalid value: specifying one of OnExitCodes and "
            "OnPodConditions is required"
        ),
        (
            'spec.podFailurePolicy.rules[2].onExitCodes.containerName: Invalid value: "nope": must '
            "be one of the container or initContainer names in the pod template"
        ),
    ]


def test_pod_failure_policy_needs_restart_never() -> None:
    obj = job(
        template=template("OnFailure"),
        podFailurePolicy={
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
        },
    )
    assert causes(obj) == [
        (
            'spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is '
            "supported when podFailurePolicy is specified"
        )
    ]


def test_pod_replacement_policy_values() -> None:
    obj = job(podReplacementPolicy="Always")
    assert causes(obj) == [
        (
            'spec.podReplacementPolicy: Unsupported value: "Always": supported '
            'values: "Failed", "TerminatingOrFailed"'
        )
    ]


def test_job_update_immutability() -> None:
    old = job(completions=3, parallelism=3)
    new = copy.deepcopy(old)
    new["spec"]["completions"] = 4
    new["spec"]["parallelism"] = 1
    new["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "1"]
    found = causes(new, old)
    assert found[0] == "spec.completions: Invalid value: 4: field is immutable"
    assert found[1].startswith("spec.template: Invalid value: {")
    assert found[1].endswith(": field is immutable")
    assert len(found) == 2


def test_suspended_job_may_change_scheduling_directives() -> None:
    old = job(suspend=True)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    assert causes(new, old) == []
    running = job(suspend=False)
    changed = copy.deepcopy(running)
    changed["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    assert [c.split(":")[0] for c in causes(changed, running)] == ["spec.template"]


# CronJobs.


def cron_job(schedule: str = "*/5 * * * *", **spec: Any) -> dict[str, Any]:
    obj = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {"spec": {"template": template("OnFailure")}},
            **spec,
        },
    }
    apply_defaults("batch/v1", "CronJob", obj)
    return obj


@pytest.mark.parametrize(
    "schedule",
    [
        "*/5 * * * *",
        "0 0 * * MON-FRI",
        "30 2 1 JAN *",
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "*/10 * * * * *",
        "0 0 ? * *",
    ],
)
def test_cron_schedules_kubernetes_accepts_plus_seconds(schedule: str) -> None:
    assert causes(cron_job(schedule)) == []


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            "* * * *",
            (
                'Invalid value: "* * * *": expected exactly 5 fields (or 6 with seconds), '
                "found 4: [* * * *]"
            ),
        ),
        ("@reboot", 'Invalid value: "@reboot": unrecognized descriptor: @reboot'),
        ("0 0 L * *", 'Invalid value: "0 0 L * *": failed to parse int from L'),
    ],
)
def test_bad_cron_schedules_are_refused(schedule: str, message: str) -> None:
    found = causes(cron_job(schedule))
    assert len(found) == 1
    assert found[0].startswith(f"spec.schedule: {message}")


def test_cron_out_of_range_field_is_refused() -> None:
    found = causes(cron_job("61 * * * *"))
    assert len(found) == 1
    assert found[0].startswith('spec.schedule: Invalid value: "61 * * * *": invalid schedule:')


def test_tz_prefix_in_schedule_is_refused() -> None:
    assert causes(cron_job("TZ=UTC 0 * * * *")) == [
        (
            'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in '
            "schedule, use timeZone field instead"
        )
    ]
    assert causes(cron_job("CRON_TZ=Europe/Paris 0 * * * *"))[0].endswith(
        "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    )


def test_time_zone_must_be_known() -> None:
    assert causes(cron_job(timeZone="Europe/Paris")) == []
    assert causes(cron_job(timeZone="Mars/Olympus")) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'
    ]
    assert causes(cron_job(timeZone="Local")) == [
        (
            'spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as '
            "defined in https://www.iana.org/time-zones"
        )
    ]
    assert causes(cron_job(timeZone="")) == [
        'spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string'
    ]


def test_cron_job_fields() -> None:
    obj = cron_job(
        concurrencyPolicy="Sometimes",
        startingDeadlineSeconds=-1,
        successfulJobsHistoryLimit=-1,
        failedJobsHistoryLimit=-1,
    )
    obj["metadata"]["name"] = "n" * 53
    assert causes(obj) == [
        "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
        (
            'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", '
            '"Forbid", "Replace"'
        ),
        "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
        "spec.failedJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
        f'metadata.name: Invalid value: "{"n" * 53}": must be no more than 52 characters',
    ]


def test_cron_job_template_is_validated_as_a_job_spec() -> None:
    obj = cron_job()
    obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    obj["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    assert causes(obj) == [
        (
            "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "
            '"OnFailure", "Never"'
        ),
        (
            'spec.jobTemplate.spec.selector: Invalid value: {"matchLabels":{"a":"b"}}: `selector` '
            "will be auto-generated"
        ),
    ]
