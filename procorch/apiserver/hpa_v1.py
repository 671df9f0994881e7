"""HorizontalPodAutoscalers at ``autoscaling/v1``, converted to and from the stored v2.

``kubectl autoscale`` (1.32) creates its HPA through the autoscaling/v1 typed client, so the
API server accepts that version on the HPA paths: create, get and list. A v1 object is
converted as Kubernetes converts it: ``targetCPUUtilizationPercentage`` is a CPU Resource
metric with a Utilization target; on the way back, metrics v1 cannot express go to the
``autoscaling.alpha.kubernetes.io/metrics`` annotation, and status conditions and current
metrics to their annotations. v2 stays the served (discovered, stored) version.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from procorch.api import errors, resources
from procorch.apiserver.auth import User
from procorch.apiserver.options import read_object, write_options
from procorch.apiserver.service import ApiService

PREFIX = "/apis/autoscaling/v1/"
HPAS = resources.must("autoscaling/horizontalpodautoscalers")
METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"

Obj = dict[str, Any]


def _is_cpu_utilization(metric: Obj) -> bool:
    source = metric.get("resource") or {}
    return (
        metric.get("type") == "Resource"
        and source.get("name") == "cpu"
        and (source.get("target") or {}).get("averageUtilization") is not None
    )


def v1_to_v2(obj: Obj) -> Obj:
    meta = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    spec = obj.get("spec") or {}
    metrics: list[Obj] = []
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": spec["targetCPUUtilizationPercentage"],
                    },
                },
            }
        )
    extra = annotations.pop(METRICS_ANNOTATION, None)
    if extra:
        try:
            metrics += list(orjson.loads(extra))
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise errors.BadRequest(f"invalid {METRICS_ANNOTATION} annotation: {exc}") from exc
    annotations.pop(CONDITIONS_ANNOTATION, None)
    annotations.pop(CURRENT_METRICS_ANNOTATION, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    v2_spec: Obj = {
        k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec
    }
    if metrics:
        v2_spec["metrics"] = metrics
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": v2_spec,
    }


def v2_to_v1(obj: Obj) -> Obj:
    meta = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    v1_spec: Obj = {
        k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas") if k in spec
    }
    others: list[Obj] = []
    for metric in spec.get("metrics") or []:
        if _is_cpu_utilization(metric) and "targetCPUUtilizationPercentage" not in v1_spec:
            v1_spec["targetCPUUtilizationPercentage"] = metric["resource"]["target"][
                "averageUtilization"
            ]
        else:
            others.append(metric)
    if others:
        annotations[METRICS_ANNOTATION] = orjson.dumps(others).decode()
    v1_status: Obj = {
        k: status[k]
        for k in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas")
        if k in status
    }
    v1_status.setdefault("currentReplicas", 0)
    v1_status.setdefault("desiredReplicas", 0)
    current_others: list[Obj] = []
    for current in status.get("currentMetrics") or []:
        source = current.get("resource") or {}
        utilization = (source.get("current") or {}).get("averageUtilization")
        if (
            current.get("type") == "Resource"
            and source.get("name") == "cpu"
            and utilization is not None
        ):
            v1_status["currentCPUUtilizationPercentage"] = utilization
        else:
            current_others.append(current)
    if current_others:
        annotations[CURRENT_METRICS_ANNOTATION] = orjson.dumps(current_others).decode()
    if status.get("conditions"):
        annotations[CONDITIONS_ANNOTATION] = orjson.dumps(status["conditions"]).decode()
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": v1_spec,
        "status": v1_status,
    }


def _json(body: Obj, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )


class AutoscalingV1:
    """The ``prefix_handlers`` entry for ``/apis/autoscaling/v1/``."""

    def __init__(self, service: ApiService) -> None:
        self.service = service

    async def handle(self, request: web.BaseRequest, user: User) -> web.StreamResponse:
        parts = [p for p in request.path[len(PREFIX) :].split("/") if p]
        namespace = ""
        if len(parts) >= 2 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        if not parts or parts[0] != HPAS.plural or len(parts) > 2:
            raise errors.NotFound("the server could not find the requested resource", details={})
        name = parts[1] if len(parts) == 2 else ""
        if request.method == "GET" and request.query.get("watch") not in ("true", "1"):
            if name:
                return _json(v2_to_v1(self.service.get(user, HPAS, namespace, name).object))
            items, revision = self.service.list(
                user,
                HPAS,
                namespace,
                label_selector=request.query.get("labelSelector", ""),
                field_selector=request.query.get("fieldSelector", ""),
            )
            return _json(
                {
                    "kind": "HorizontalPodAutoscalerList",
                    "apiVersion": "autoscaling/v1",
                    "metadata": {"resourceVersion": str(revision)},
                    "items": [v2_to_v1(s.object) for s in items],
                }
            )
        if request.method == "POST" and not name:
            options = write_options(request)
            body, _, _ = await read_object(request, HPAS, options)
            if not isinstance(body, dict):
                raise errors.BadRequest("the request body must be a HorizontalPodAutoscaler")
            result = await self.service.create(user, HPAS, namespace, v1_to_v2(body), options)
            return _json(v2_to_v1(result.stored.object), status=201)
        raise errors.MethodNotAllowed(
            "autoscaling/v1 HorizontalPodAutoscalers support create, get and list; "
            "use autoscaling/v2 for the rest"
        )
