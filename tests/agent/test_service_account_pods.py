"""A pod calls the API as its ServiceAccount, the way it does on Kubernetes: the projected
token, ``ca.crt`` and ``namespace`` at /var/run/secrets/kubernetes.io/serviceaccount,
``KUBERNETES_SERVICE_HOST``/``_PORT`` leading to the API through the ``kubernetes`` Service,
and the official client's ``load_incluster_config()`` unmodified. RBAC decides what it may do,
and its token stops working when the pod is deleted."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from procorch.api.serviceaccounts import SERVICE_ACCOUNT_DIR
from tests.agent.conftest import Cluster, container_state
from tests.conftest import Kubectl

CLIENT = textwrap.dedent(
    """
    import os, sys, time
    from kubernetes import client, config
    base = "/var/run/secrets/kubernetes.io/serviceaccount"
    print("files", sorted(f for f in os.listdir(base) if not f.startswith("..")))
    print("namespace", open(base + "/namespace").read())
    config.load_incluster_config()
    api = client.CoreV1Api()
    for attempt in range(int(sys.argv[1])):
        try:
            names = [p.metadata.name for p in api.list_namespaced_pod("default").items]
            print("allowed", sorted(names), flush=True)
        except client.ApiException as e:
            print("refused", e.status, flush=True)
        time.sleep(0.1)
    """
)


def pod(name: str, attempts: int, *, automount: bool = True) -> str:
    lines = "\n".join("        " + line for line in CLIENT.strip().splitlines())
    extra = "" if automount else "  automountServiceAccountToken: false\n"
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
{extra}  containers:
  - name: c
    command:
    - {sys.executable}
    - -c
    - |
{lines}
    - "{attempts}"
"""


async def logs_of(kubectl: Kubectl, name: str) -> str:
    return (await kubectl("logs", name)).stdout


async def test_in_cluster_client_is_decided_by_rbac(cluster: Cluster, kubectl: Kubectl) -> None:
    await cluster.apply(pod("refused", 1))
    done = await cluster.wait_pod("refused", lambda p: p["status"].get("phase") == "Succeeded")
    assert container_state(done)["state"]["terminated"]["exitCode"] == 0
    out = await logs_of(kubectl, "refused")
    assert "files ['ca.crt', 'namespace', 'token']" in out
    assert "namespace default" in out
    assert "refused 403" in out
    volumes = done["spec"]["volumes"]
    assert [v["name"][: len("kube-api-access-")] for v in volumes] == ["kube-api-access-"]
    mounts = done["spec"]["containers"][0]["volumeMounts"]
    assert mounts[0]["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount"

    await kubectl(
        "create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=default:default"
    )
    # Allowed while it runs; once deleted, its token no longer works (the process is
    # killed with the pod, so the refusal is checked with the token it had).
    await cluster.apply(pod("allowed", 1))
    await cluster.wait_pod("allowed", lambda p: p["status"].get("phase") == "Succeeded")
    assert "allowed ['allowed', 'refused']" in await logs_of(kubectl, "allowed")

    # No token where the pod or its account says so.
    await cluster.apply(pod("without", 0, automount=False))
    done = await cluster.wait_pod(
        "without", lambda p: p["status"].get("phase") in ("Failed", "Succeeded")
    )
    assert not any(
        v["name"].startswith("kube-api-access-") for v in done["spec"].get("volumes") or []
    )
    if not Path(SERVICE_ACCOUNT_DIR).exists():  # (a host that is itself a pod has one)
        assert "No such file or directory" in await logs_of(kubectl, "without")


async def test_a_pods_token_ends_with_the_pod(cluster: Cluster, kubectl: Kubectl) -> None:
    await cluster.apply(pod("holder", 0))
    await cluster.wait_pod("holder", lambda p: p["status"].get("phase") == "Succeeded")
    uid = (await cluster.pod("holder"))["metadata"]["uid"]
    data_dir = cluster.procorch.config.data_dir
    found = list(data_dir.glob(f"nodes/*/pods/{uid}/volumes/kubernetes.io~projected/*/token"))
    assert len(found) == 1
    token = found[0].read_text()
    assert (
        "system:serviceaccount:default:default"
        in (await kubectl("auth", "whoami", "--token", token)).stdout
    )
    await kubectl("delete", "pod", "holder")
    await cluster.wait_gone("holder")
    gone = await kubectl("auth", "whoami", "--token", token, check=False)
    assert gone.returncode == 1 and "Unauthorized" in gone.stderr


async def test_a_pod_cannot_read_procorchs_data_dir(cluster: Cluster, kubectl: Kubectl) -> None:
    """The admin token, the keys and the store stay procorch's: the data dir is empty to a
    pod (an empty read-only tmpfs over it in the pod's mount namespace), while its own
    volumes, which live there on the host, are where its manifest mounts them."""
    data_dir = cluster.procorch.config.data_dir.resolve()
    assert (data_dir / "admin-token").exists() and (data_dir / "pki" / "sa.key").exists()
    script = (
        "import os\n"
        f"print('listing', os.listdir({str(data_dir)!r}))\n"
        "for name in ('admin-token', 'pki/sa.key', 'store.db', 'kubeconfig'):\n"
        f"    print(name, os.path.exists(os.path.join({str(data_dir)!r}, name)))\n"
        "print('token', len(open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()))\n"
        "try:\n"
        f"    open(os.path.join({str(data_dir)!r}, 'x'), 'w')\n"
        "except OSError as e:\n"
        "    print('write', e.strerror)\n"
        # Nor through a hostPath of the directory holding it, or of a part of it.
        f"print('through parent', os.listdir('/procorch-parent/{data_dir.name}'))\n"
        "print('through part', os.listdir('/procorch-pki'))\n"
        "print('parent file', open('/procorch-parent/marker').read())\n"
    )
    (data_dir.parent / "marker").write_text("the rest of the host path stays visible")
    manifest = f"""
apiVersion: v1
kind: Pod
metadata: {{name: curious}}
spec:
  restartPolicy: Never
  volumes:
  - {{name: parent, hostPath: {{path: {data_dir.parent}}}}}
  - {{name: pki, hostPath: {{path: {data_dir / "pki"}}}}}
  containers:
  - name: c
    command: [{sys.executable}, -c, {json.dumps(script)}]
    volumeMounts:
    - {{name: parent, mountPath: /procorch-parent, readOnly: true}}
    - {{name: pki, mountPath: /procorch-pki}}
"""
    await cluster.apply(manifest)
    done = await cluster.wait_pod("curious", lambda p: p["status"].get("phase") == "Succeeded")
    assert container_state(done)["state"]["terminated"]["exitCode"] == 0
    out = await logs_of(kubectl, "curious")
    assert "listing []" in out
    for name in ("admin-token", "pki/sa.key", "store.db", "kubeconfig"):
        assert f"{name} False" in out
    assert "write Read-only file system" in out
    assert "through parent []" in out and "through part []" in out
    assert "parent file the rest of the host path stays visible" in out
    assert "token 0" not in out and "token " in out
