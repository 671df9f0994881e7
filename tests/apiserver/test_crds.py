"""CustomResourceDefinitions with real kubectl: a CRD serves its kind at once (discovery,
REST, printer columns, categories, short names), objects are pruned, defaulted and
validated by the schema as kube-apiserver does, and deleting the CRD deletes its objects."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from procorch.api import resources
from procorch.launcher.up import Procorch
from tests.conftest import Kubectl

pytestmark = pytest.mark.kubectl

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, blue], default: red}
              port: {x-kubernetes-int-or-string: true}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


async def test_a_crd_serves_its_kind_as_kube_apiserver_does(
    kubectl: Kubectl, procorch: Procorch, tmp_path: Path
) -> None:
    began = time.monotonic()
    await kubectl("apply", "-f", write(tmp_path, "crd.yaml", CRD))
    widget = """
    apiVersion: example.com/v1
    kind: Widget
    metadata: {name: w1}
    spec: {size: 3, port: http, extra: {anything: [1, 2]}}
    """
    await kubectl("apply", "-f", write(tmp_path, "w1.yaml", widget))
    assert time.monotonic() - began < 5
    crd = json.loads((await kubectl("get", "crd", "widgets.example.com", "-o", "json")).stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["storedVersions"] == ["v1"]
    assert crd["status"]["acceptedNames"]["listKind"] == "WidgetList"
    # Defaults from the schema, unknown fields kept only where the schema says so.
    obj = json.loads((await kubectl("get", "wd", "w1", "-o", "json")).stdout)
    assert obj["spec"] == {"size": 3, "port": "http", "color": "red", "extra": {"anything": [1, 2]}}
    assert obj["metadata"]["generation"] == 1
    # kubectl explain reads the CRD's schema.
    explained = (await kubectl("explain", "widget.spec")).stdout
    assert "KIND:       Widget" in explained
    assert "size\t<integer> -required-" in explained and "enum: red, blue" in explained
    # Printer columns, the "all" category, short names.
    table = (await kubectl("get", "widgets")).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "COLOR", "READY"]
    assert table[1].split() == ["w1", "3", "red", "<none>"]
    assert "widget.example.com/w1" in (await kubectl("get", "all")).stdout
    # The status subresource, and the column reading it.
    await kubectl(
        "patch", "wd", "w1", "--subresource=status", "--type=merge",
        "-p", '{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}',
    )  # fmt: skip
    assert (await kubectl("get", "widgets")).stdout.splitlines()[1].split()[-1] == "True"
    # Kubernetes' words for what the schema refuses, and for unknown fields with kubectl's
    # strict field validation.
    out = await kubectl(
        "patch", "wd", "w1", "--type=merge", "-p", '{"spec":{"size":30}}', check=False
    )
    assert out.stderr.strip() == (
        'The Widget "w1" is invalid: spec.size: Invalid value: 30: spec.size in body should '
        "be less than or equal to 10"
    )
    out = await kubectl(
        "patch", "wd", "w1", "--type=merge", "-p", '{"spec":{"color":"pink","size":"x"}}',
        check=False,
    )  # fmt: skip
    assert 'spec.color: Unsupported value: "pink": supported values: "red", "blue"' in out.stderr
    assert 'spec.size: Invalid value: "string": spec.size in body must be of type integer' in (
        out.stderr
    )
    bad = """
    apiVersion: example.com/v1
    kind: Widget
    metadata: {name: w2}
    spec: {size: 2, mystery: 1}
    """
    out = await kubectl("apply", "-f", write(tmp_path, "w2.yaml", bad), check=False)
    assert 'strict decoding error: unknown field "spec.mystery"' in out.stderr
    out = await kubectl("create", "-f", str(tmp_path / "w2.yaml"), "--validate=false")
    assert json.loads((await kubectl("get", "wd", "w2", "-o", "json")).stdout)["spec"] == {
        "size": 2,
        "color": "red",
    }
    # No strategic merge for a custom resource; merge, JSON patch and apply work.
    out = await kubectl("patch", "wd", "w1", "-p", '{"spec":{"size":4}}', check=False)
    assert "the body of the request was in an unknown format" in out.stderr
    await kubectl(
        "patch", "wd", "w1", "--type=json", "-p", '[{"op":"replace","path":"/spec/size","value":5}]'
    )
    await kubectl("apply", "--server-side", "--force-conflicts", "-f", str(tmp_path / "w1.yaml"))
    assert json.loads((await kubectl("get", "wd", "w1", "-o", "json")).stdout)["spec"]["size"] == 3

    # A custom resource owns what names it as owner (garbage collection), and goes with its
    # namespace.
    uid = json.loads((await kubectl("get", "wd", "w2", "-o", "json")).stdout)["metadata"]["uid"]
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w2", "uid": uid}
            ],
        },
    }
    await kubectl("create", "-f", write(tmp_path, "owned.json", json.dumps(owned)))
    await kubectl("delete", "wd", "w2")
    await kubectl("wait", "--for=delete", "configmap/owned", "--timeout=20s", timeout=30)
    await kubectl("create", "namespace", "scratch")
    await kubectl("create", "-f", str(tmp_path / "w2.yaml"), "-n", "scratch", "--validate=false")
    await kubectl("delete", "namespace", "scratch", "--timeout=30s", timeout=40)

    # Deleting the CRD deletes its objects, then the kind is no longer served.
    await kubectl("delete", "crd", "widgets.example.com", timeout=30)
    out = await kubectl("get", "widgets", check=False)
    assert out.returncode == 1
    assert resources.by_key("example.com/widgets") is None
    stored, _ = procorch.control_plane.store.list("example.com/widgets")
    assert stored == []


async def test_a_crd_is_checked_as_kubernetes_checks_it(kubectl: Kubectl, tmp_path: Path) -> None:
    bad = """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: gadgets.example}
    spec:
      group: example
      scope: Namespaced
      names: {plural: gadgets, kind: Gadget}
      versions:
      - name: v1
        served: true
        storage: false
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec: {properties: {size: {type: integer}}}
    """
    out = await kubectl("apply", "-f", write(tmp_path, "bad.yaml", bad), check=False)
    assert out.returncode == 1
    for expected in (
        'spec.group: Invalid value: "example": should be a domain with at least one dot',
        "must have exactly one version marked as storage version",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must "
        "not be empty for specified object fields",
    ):
        assert expected in out.stderr, out.stderr


async def test_several_versions_and_the_scale_subresource(kubectl: Kubectl, tmp_path: Path) -> None:
    crd = """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: pools.example.com}
    spec:
      group: example.com
      scope: Cluster
      names: {plural: pools, kind: Pool}
      versions:
      - name: v1beta1
        served: true
        storage: false
        additionalPrinterColumns: [{name: Old Size, type: integer, jsonPath: .spec.size}]
        schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
      - name: v1
        served: true
        storage: true
        additionalPrinterColumns: [{name: Size, type: integer, jsonPath: .spec.size}]
        subresources:
          status: {}
          scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.size, labelSelectorPath: .status.selector}
        schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    """
    await kubectl("apply", "-f", write(tmp_path, "crd.yaml", crd))
    pool = """
    apiVersion: example.com/v1beta1
    kind: Pool
    metadata: {name: p1}
    spec: {size: 2}
    """
    await kubectl("apply", "-f", write(tmp_path, "p1.yaml", pool))
    # Stored at the storage version; read at the version asked for (conversion None).
    at_v1 = json.loads((await kubectl("get", "pools.v1.example.com", "p1", "-o", "json")).stdout)
    old = json.loads((await kubectl("get", "pools.v1beta1.example.com", "p1", "-o", "json")).stdout)
    assert (at_v1["apiVersion"], old["apiVersion"]) == ("example.com/v1", "example.com/v1beta1")
    assert at_v1["spec"] == old["spec"] == {"size": 2}
    # Each version prints with its own additionalPrinterColumns.
    assert (await kubectl("get", "pools.v1.example.com")).stdout.split("\n")[0].split() == [
        "NAME",
        "SIZE",
    ]
    assert (await kubectl("get", "pools.v1beta1.example.com")).stdout.split()[:3] == [
        "NAME",
        "OLD",
        "SIZE",
    ]
    crd_now = json.loads((await kubectl("get", "crd", "pools.example.com", "-o", "json")).stdout)
    assert crd_now["status"]["storedVersions"] == ["v1"]
    # kubectl scale through the CRD's scale paths.
    await kubectl("scale", "pool", "p1", "--replicas=5")
    assert json.loads((await kubectl("get", "pool", "p1", "-o", "json")).stdout)["spec"] == {
        "size": 5
    }
    scale = json.loads(
        (await kubectl("get", "--raw", "/apis/example.com/v1/pools/p1/scale")).stdout
    )
    assert scale["spec"] == {"replicas": 5} and scale["kind"] == "Scale"


async def test_cel_validation_rules(kubectl: Kubectl, tmp_path: Path) -> None:
    crd = """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: scalers.example.com}
    spec:
      group: example.com
      scope: Namespaced
      names: {plural: scalers, kind: Scaler}
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                x-kubernetes-validations:
                - rule: self.minReplicas <= self.replicas
                  message: replicas should be greater than or equal to minReplicas
                - rule: self.replicas >= oldSelf.replicas
                  message: replicas may not shrink
                properties:
                  replicas: {type: integer}
                  minReplicas: {type: integer}
                  tags:
                    type: array
                    items: {type: string}
                    x-kubernetes-validations:
                    - {rule: "self.all(t, t.startsWith('team-'))", message: tags start with team-}
    """
    await kubectl("apply", "-f", write(tmp_path, "crd.yaml", crd))
    obj = """
    apiVersion: example.com/v1
    kind: Scaler
    metadata: {name: s1}
    spec: {replicas: 1, minReplicas: 2, tags: [team-a, other]}
    """
    out = await kubectl("apply", "-f", write(tmp_path, "s1.yaml", obj), check=False)
    assert (
        'spec: Invalid value: "object": replicas should be greater than or equal to minReplicas'
        in out.stderr
    )
    assert 'spec.tags: Invalid value: "array": tags start with team-' in out.stderr
    await kubectl(
        "apply",
        "-f",
        write(
            tmp_path, "s1.yaml", obj.replace("replicas: 1", "replicas: 3").replace(", other", "")
        ),
    )
    # A transition rule sees the value before the update as oldSelf.
    out = await kubectl(
        "patch", "scaler", "s1", "--type=merge", "-p", '{"spec":{"replicas":2}}', check=False
    )
    assert 'spec: Invalid value: "object": replicas may not shrink' in out.stderr
    await kubectl("patch", "scaler", "s1", "--type=merge", "-p", '{"spec":{"replicas":4}}')
    broken = (
        crd.replace("self.minReplicas <= self.replicas", "self.minReplicas <=")
        .replace("scalers", "brokens")
        .replace("Scaler", "Broken")
    )
    out = await kubectl("apply", "-f", write(tmp_path, "broken.yaml", broken), check=False)
    assert "x-kubernetes-validations[0].rule: Invalid value" in out.stderr
    assert "compilation failed" in out.stderr


async def test_a_crd_cannot_take_over_a_built_in_resource(
    kubectl: Kubectl, procorch: Procorch, tmp_path: Path
) -> None:
    crd = """
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: leases.coordination.k8s.io}
    spec:
      group: coordination.k8s.io
      scope: Namespaced
      names: {plural: leases, kind: Lease}
      versions:
      - {name: v2, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
    """
    out = await kubectl("apply", "-f", write(tmp_path, "crd.yaml", crd), check=False)
    assert (
        "metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups "
        'must have approval annotation "api-approved.kubernetes.io"'
    ) in out.stderr
    approved = crd.replace(
        "metadata: {name: leases.coordination.k8s.io}",
        "metadata: {name: leases.coordination.k8s.io, annotations: "
        "{api-approved.kubernetes.io: unapproved}}",
    )
    await kubectl("apply", "-f", write(tmp_path, "crd.yaml", approved))
    deadline = time.monotonic() + 10
    while True:
        crd_now = json.loads(
            (await kubectl("get", "crd", "leases.coordination.k8s.io", "-o", "json")).stdout
        )
        conditions = {c["type"]: c for c in (crd_now.get("status") or {}).get("conditions") or []}
        if "NamesAccepted" in conditions:
            break
        assert time.monotonic() < deadline
    assert conditions["NamesAccepted"]["status"] == "False"
    assert "already served" in conditions["NamesAccepted"]["message"]
    assert not resources.must("coordination.k8s.io/leases").custom
    # Deleting it deletes no Lease.
    before = len(procorch.control_plane.store.list("coordination.k8s.io/leases")[0])
    await kubectl("delete", "crd", "leases.coordination.k8s.io", timeout=30)
    assert len(procorch.control_plane.store.list("coordination.k8s.io/leases")[0]) == before
