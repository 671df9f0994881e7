"""Defaults for pod specs wherever they appear (Pods and the templates of workloads), and the
Pod-only defaults.

Mirrors Kubernetes 1.32's ``SetDefaults_PodSpec``, ``SetDefaults_Container``,
``SetDefaults_Volume`` and friends, ``SetDefaults_Probe``, ``SetDefaults_HTTPGetAction``,
``SetDefaults_ObjectFieldSelector``, ``SetDefaults_ResourceList`` (round up to milli units,
stored in canonical form), and, for Pods only, ``SetDefaults_Pod`` plus what the default
admission plugins add to every new Pod (priority, preemption policy, service account,
not-ready/unreachable tolerations). Functions mutate the dict they are given. Pure data.
"""

from __future__ import annotations

from typing import Any

from procorch.api.quantity import round_up_quantity

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_FILE_MODE = 0o644  # 420: configMap, secret, downwardAPI and projected volumes
DEFAULT_TOLERATION_SECONDS = 300
VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)


def _dict(parent: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = parent.get(name)
    return value if isinstance(value, dict) else None


def _dicts(parent: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = parent.get(name)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def set_missing(obj: dict[str, Any], name: str, value: Any) -> None:
    """Set a field that is absent or null (a Go nil pointer or zero value)."""
    if obj.get(name) is None:
        obj[name] = value


def set_if_empty(obj: dict[str, Any], name: str, value: Any) -> None:
    """Set a string field that is absent, null or empty (Go's ``== ""`` checks)."""
    if obj.get(name) in (None, ""):
        obj[name] = value


def round_resource_list(resources: Any) -> None:
    """SetDefaults_ResourceList: round every quantity up to milli units, canonical text.
    Values that do not parse are left for validation to report."""
    if not isinstance(resources, dict):
        return
    for name, value in list(resources.items()):
        try:
            resources[name] = round_up_quantity(value, scale=-3)
        except (ValueError, TypeError):
            continue


def _resources(requirements: Any) -> None:
    if isinstance(requirements, dict):
        round_resource_list(requirements.get("limits"))
        round_resource_list(requirements.get("requests"))


def _field_ref(holder: dict[str, Any] | None) -> None:
    if holder is not None:
        ref = _dict(holder, "fieldRef")
        if ref is not None:
            set_if_empty(ref, "apiVersion", "v1")


def _http_get(handler: dict[str, Any] | None) -> None:
    if handler is None:
        return
    action = _dict(handler, "httpGet")
    if action is not None:
        set_if_empty(action, "path", "/")
        set_if_empty(action, "scheme", "HTTP")
    grpc = _dict(handler, "grpc")
    if grpc is not None:
        set_missing(grpc, "service", "")


def _probe(probe: dict[str, Any] | None) -> None:
    if probe is None:
        return
    for name, default in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if probe.get(name) in (None, 0):
            probe[name] = default
    _http_get(probe)


def image_pull_policy(image: Any) -> str:
    """``Always`` for an image tagged ``latest`` or not tagged at all, else ``IfNotPresent``
    (also for no image, which is what procorch containers usually have)."""
    if not isinstance(image, str) or not image or image != image.strip():
        return "IfNotPresent"
    name, _, digest = image.partition("@")
    repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    if digest or repository != repository.lower():
        # Pinned by digest, or a reference Kubernetes cannot parse (repositories are lower
        # case): either way it gets no "latest" tag.
        return "IfNotPresent"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"
    return "Always"


def container(ctr: dict[str, Any]) -> None:
    set_if_empty(ctr, "imagePullPolicy", image_pull_policy(ctr.get("image")))
    set_if_empty(ctr, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    set_if_empty(ctr, "terminationMessagePolicy", "File")
    # Go always serializes this struct, so Kubernetes shows `resources: {}`.
    set_missing(ctr, "resources", {})
    for port in _dicts(ctr, "ports"):
        set_if_empty(port, "protocol", "TCP")
    for var in _dicts(ctr, "env"):
        _field_ref(_dict(var, "valueFrom"))
    _resources(ctr.get("resources"))
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(_dict(ctr, name))
    lifecycle = _dict(ctr, "lifecycle")
    if lifecycle is not None:
        _http_get(_dict(lifecycle, "postStart"))
        _http_get(_dict(lifecycle, "preStop"))


def volume(vol: dict[str, Any]) -> None:
    if not any(vol.get(source) is not None for source in VOLUME_SOURCES):
        vol["emptyDir"] = {}
    host_path = _dict(vol, "hostPath")
    if host_path is not None:
        set_missing(host_path, "type", "")
    for kind in ("secret", "configMap", "downwardAPI", "projected"):
        section = _dict(vol, kind)
        if section is not None:
            set_missing(section, "defaultMode", DEFAULT_FILE_MODE)
    downward = _dict(vol, "downwardAPI")
    if downward is not None:
        for item in _dicts(downward, "items"):
            _field_ref(item)
    projected = _dict(vol, "projected")
    if projected is not None:
        for projection in _dicts(projected, "sources"):
            downward_source = _dict(projection, "downwardAPI")
            if downward_source is not None:
                for item in _dicts(downward_source, "items"):
                    _field_ref(item)
            token = _dict(projection, "serviceAccountToken")
            if token is not None:
                set_missing(token, "expirationSeconds", 3600)
    ephemeral = _dict(vol, "ephemeral")
    if ephemeral is not None:
        template = _dict(ephemeral, "volumeClaimTemplate")
        spec = _dict(template, "spec") if template is not None else None
        if spec is not None:
            set_missing(spec, "volumeMode", "Filesystem")
            _resources(spec.get("resources"))


def pod_spec(spec: dict[str, Any]) -> None:
    """Defaults for any PodSpec (SetDefaults_PodSpec and the types inside it)."""
    set_if_empty(spec, "dnsPolicy", "ClusterFirst")
    set_if_empty(spec, "restartPolicy", "Always")
    set_missing(spec, "securityContext", {})
    set_missing(spec, "terminationGracePeriodSeconds", 30)
    set_if_empty(spec, "schedulerName", "default-scheduler")
    # The deprecated serviceAccount mirrors serviceAccountName, as Kubernetes' conversion does.
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for vol in _dicts(spec, "volumes"):
        volume(vol)
    for name in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in _dicts(spec, name):
            container(ctr)
    round_resource_list(spec.get("overhead"))


def pod_template(template: Any) -> None:
    if isinstance(template, dict):
        spec = _dict(template, "spec")
        if spec is not None:
            pod_spec(spec)


def _tolerates(tolerations: list[dict[str, Any]], taint_key: str) -> bool:
    """Whether some toleration already tolerates ``taint_key:NoExecute``."""
    for tol in tolerations:
        if tol.get("effect") not in (None, "", "NoExecute"):
            continue
        if tol.get("operator") == "Exists" and tol.get("key") in (None, "", taint_key):
            return True
        if (
            tol.get("key") == taint_key
            and tol.get("operator") in (None, "", "Equal")
            and (tol.get("value") in (None, ""))
        ):
            return True
    return False


def pod(obj: dict[str, Any]) -> None:
    """A Pod: SetDefaults_Pod, its spec, and what admission adds to every new Pod."""
    spec = _dict(obj, "spec")
    if spec is None:
        return
    for name in ("containers", "initContainers"):
        for ctr in _dicts(spec, name):
            resources = _dict(ctr, "resources")
            limits = _dict(resources, "limits") if resources is not None else None
            if resources is not None and limits is not None:
                requests = _dict(resources, "requests")
                if requests is None:
                    requests = resources["requests"] = {}
                for resource, value in limits.items():
                    requests.setdefault(resource, value)
    set_missing(spec, "enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        for name in ("containers", "initContainers"):
            for ctr in _dicts(spec, name):
                for port in _dicts(ctr, "ports"):
                    if port.get("hostPort") in (None, 0):
                        port["hostPort"] = port.get("containerPort")
    pod_spec(spec)
    # Admission (Priority, ServiceAccount, DefaultTolerationSeconds), as in a default cluster.
    if not spec.get("priorityClassName"):
        set_missing(spec, "priority", 0)
        set_missing(spec, "preemptionPolicy", "PreemptLowerPriority")
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"] = "default"
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    if isinstance(tolerations, list):
        for taint_key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not _tolerates([t for t in tolerations if isinstance(t, dict)], taint_key):
                tolerations.append(
                    {
                        "key": taint_key,
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                    }
                )
        spec["tolerations"] = tolerations
