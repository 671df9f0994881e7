"""The native CLI against a running procorch: apply, get, describe, delete, kubeconfig."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path

import yaml


async def run(data_dir: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "procorch",
        *args,
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    code = proc.returncode or 0
    if check:
        assert code == 0, f"procorch {' '.join(args)} failed:\n{err.decode()}\n{out.decode()}"
    return code, out.decode(), err.decode()


APP = textwrap.dedent("""
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: api, labels: {app: api}}
    spec:
      replicas: 2
      selector: {matchLabels: {app: api}}
      template:
        metadata: {labels: {app: api}}
        spec:
          containers:
          - {name: api, command: [sleep, "100"]}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: api-config, labels: {app: api}}
    data: {level: debug}
    """)


async def test_apply_get_describe_delete(procorch, tmp_path: Path) -> None:
    data = procorch.data_dir
    path = tmp_path / "app.yaml"
    path.write_text(APP)
    _, out, _ = await run(data, "apply", "-f", str(path))
    assert "configmap/api-config created" in out and "deployment.apps/api created" in out
    _, out, _ = await run(data, "apply", "-f", str(path))
    assert "deployment.apps/api unchanged" in out
    _, out, _ = await run(data, "get", "deploy")
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:2] == ["api", "0/2"]
    _, out, _ = await run(data, "get", "cm", "api-config", "-o", "yaml")
    assert yaml.safe_load(out)["data"] == {"level": "debug"}
    _, out, _ = await run(data, "get", "deploy,cm", "-l", "app=api", "-o", "name")
    assert out.split() == ["deployment.apps/api", "configmap/api-config"]
    _, out, _ = await run(data, "describe", "cm", "api-config")
    assert "Name:" in out and "api-config" in out and "level: debug" in out
    _, out, _ = await run(data, "delete", "-f", str(path))
    assert 'deployment.apps "api" deleted' in out and 'configmap "api-config" deleted' in out
    code, _, err = await run(data, "get", "cm", "api-config", check=False)
    assert code == 1 and "NotFound" in err


async def test_apply_with_one_invalid_document_applies_nothing(procorch, tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(
        APP
        + textwrap.dedent("""
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: broken}
        data: {key: 12}
        """)
    )
    code, _, err = await run(procorch.data_dir, "apply", "-f", str(path), check=False)
    assert code == 1
    assert "nothing was applied" in err and "data[key]" in err
    _, out, err = await run(procorch.data_dir, "get", "deploy,cm", "-l", "app=api")
    assert "No resources found" in err


async def test_malformed_metadata_and_names_that_are_not_path_segments_are_refused_cleanly(
    procorch, tmp_path: Path
) -> None:
    """Found by the manifest fuzzer: ``metadata: 1`` crashed ``procorch apply`` with a
    traceback, and a name such as ``..`` or ``a/b`` went into the request path as is (where
    ``..`` names the namespace itself). Each is a problem reported with its document."""
    path = tmp_path / "odd.yaml"
    path.write_text(
        APP
        + textwrap.dedent("""
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: 1
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: ".."}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: a/b}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: ok, namespace: [x]}
        """)
    )
    code, _, err = await run(procorch.data_dir, "apply", "-f", str(path), check=False)
    assert code == 1 and "Traceback" not in err, err
    assert "nothing was applied" in err
    for n in (2, 3, 4, 5):
        assert f"odd.yaml#{n}" in err, (n, err)
    _, out, err = await run(procorch.data_dir, "get", "deploy,cm", "-l", "app=api")
    assert "No resources found" in err


def node_port_service(name: str, namespace: str, node_port: int) -> str:
    return textwrap.dedent(f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          type: NodePort
          selector: {{app: {name}}}
          ports: [{{port: 80, nodePort: {node_port}}}]
        """)


async def test_documents_that_collide_only_with_each_other_apply_nothing(
    procorch, tmp_path: Path
) -> None:
    """Found by the manifest fuzzer: each dry run passes alone, so two Services asking for
    one node port (or one in a namespace the file creates, asking for a taken port) had the
    first written before the second was refused."""
    twins = tmp_path / "twins.yaml"
    twins.write_text(
        node_port_service("one", "default", 30090)
        + "---"
        + node_port_service("two", "default", 30090)
    )
    code, _, err = await run(procorch.data_dir, "apply", "-f", str(twins), check=False)
    assert code == 1 and "nothing was applied" in err, err
    assert "twins.yaml#1" in err and "spec.ports[0].nodePort" in err, err
    code, _, err = await run(procorch.data_dir, "get", "svc", "one", check=False)
    assert code == 1 and "NotFound" in err
    # A taken port, asked for from a namespace the file creates.
    taken = tmp_path / "taken.yaml"
    taken.write_text(node_port_service("first", "default", 30091))
    await run(procorch.data_dir, "apply", "-f", str(taken))
    late = tmp_path / "late.yaml"
    late.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: late}\n---"
        + node_port_service("second", "late", 30091)
    )
    code, _, err = await run(procorch.data_dir, "apply", "-f", str(late), check=False)
    assert code == 1 and "nothing was applied" in err and "30091" in err, err
    code, _, err = await run(procorch.data_dir, "get", "ns", "late", check=False)
    assert code == 1 and "NotFound" in err


async def test_values_yaml_has_and_json_has_not_are_refused_cleanly(
    procorch, tmp_path: Path
) -> None:
    """Found by the manifest fuzzer, each a traceback from ``procorch apply``: nesting deeper
    than the YAML parser's recursion, an integer beyond 64 bits (orjson refuses it), and
    ``.nan`` (orjson sent it as null, and the server took it)."""
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: odd}\n"
    cases = {
        "deep.yaml": (cm + "data: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
        "nan.yaml": (cm + "data: {a: .nan}\n", "data.a: nan is not a JSON number"),
        "big.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: big}\n"
            "spec: {replicas: 100000000000000000000000}\n---\n" + cm + "data: {1: one}\n",
            "big.yaml#0",
        ),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        code, _, err = await run(procorch.data_dir, "apply", "-f", str(path), check=False)
        assert code == 1 and "Traceback" not in err, (name, err)
        assert expected in err, (name, err)
    code, _, err = await run(procorch.data_dir, "get", "cm", "odd", check=False)
    assert code == 1 and "NotFound" in err


async def test_unknown_kind_is_named(procorch, tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    code, _, err = await run(procorch.data_dir, "apply", "-f", str(path), check=False)
    assert code == 1 and 'no matches for kind "Widget"' in err


async def test_kubeconfig_points_at_the_data_dir(procorch) -> None:
    _, out, _ = await run(procorch.data_dir, "kubeconfig")
    assert out.strip() == f"export KUBECONFIG={procorch.kubeconfig_path}"
    _, raw, _ = await run(procorch.data_dir, "kubeconfig", "--raw")
    assert yaml.safe_load(raw)["clusters"][0]["cluster"]["server"] == procorch.api_url
    assert json.loads(json.dumps(yaml.safe_load(raw)))["current-context"] == "procorch"


async def run_in(
    cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> tuple[int, str, str]:
    """procorch without --data-dir, from ``cwd``, with only ``env`` (and PATH) set."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "procorch",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            "PATH": "/usr/bin:/bin",
            "NO_COLOR": "1",
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
            **(env or {}),
        },
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    code = proc.returncode or 0
    if check:
        assert code == 0, f"procorch {' '.join(args)} failed:\n{err.decode()}\n{out.decode()}"
    return code, out.decode(), err.decode()


LONG_NS = "a-namespace-with-a-rather-long-name"
LONG_POD = "a-pod-whose-name-is-longer-than-any-narrow-terminal"


async def test_piped_tables_are_never_truncated_or_wrapped(procorch, tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(
        textwrap.dedent(f"""
            apiVersion: v1
            kind: Namespace
            metadata: {{name: {LONG_NS}}}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {{name: {LONG_POD}, namespace: {LONG_NS}}}
            spec:
              containers:
              - {{name: main, command: [sleep, "1000"]}}
            """)
    )
    await run(procorch.data_dir, "apply", "-f", str(path))
    # Even a tiny $COLUMNS must not matter when stdout is a pipe (kubectl ignores it too).
    _, out, _ = await run_in(
        tmp_path,
        "get",
        "pods",
        "-A",
        "-o",
        "wide",
        "--data-dir",
        str(procorch.data_dir),
        env={"COLUMNS": "40"},
    )
    header, row = out.splitlines()[:2]
    assert "…" not in out
    assert header.split()[:3] == ["NAMESPACE", "NAME", "READY"]
    assert "NOMINATED NODE" in header and "READINESS GATES" in header
    assert row.split()[:2] == [LONG_NS, LONG_POD]
    await run(procorch.data_dir, "delete", "ns", LONG_NS, "--no-wait")


async def test_get_all_lists_every_kind_of_the_all_category(procorch, tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        APP
        + textwrap.dedent("""
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: api}
            spec:
              selector: {app: api}
              ports: [{port: 80}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: solo}
            spec:
              containers:
              - {name: main, command: [sleep, "1000"]}
            """)
    )
    await run(procorch.data_dir, "apply", "-f", str(path))
    _, out, _ = await run(procorch.data_dir, "get", "all")
    names = [line.split()[0] for line in out.splitlines() if line and not line.startswith("NAME")]
    assert "pod/solo" in names
    assert "service/api" in names
    assert "deployment.apps/api" in names
    # kubectl's order (pods, services, deployments, ...) with a blank line between the tables.
    assert names.index("pod/solo") < names.index("service/api") < names.index("deployment.apps/api")
    assert out.count("\n\n") >= 2
    assert "configmap" not in out  # configmaps are not in the "all" category
    _, out, _ = await run(procorch.data_dir, "get", "all", "-o", "name")
    assert {"pod/solo", "service/api", "deployment.apps/api"} <= set(out.split())


async def test_kubeconfig_comes_from_the_environment_then_the_current_directory(
    procorch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"KUBECONFIG": f"{tmp_path / 'missing'}:{procorch.kubeconfig_path}"}
    _, out, _ = await run_in(elsewhere, "get", "ns", env=env)
    assert "kube-system" in out
    # Without $KUBECONFIG: ./.procorch/kubeconfig.
    code, _, err = await run_in(elsewhere, "get", "ns", check=False)
    assert code == 1 and str(Path(".procorch") / "kubeconfig") in err
    local = elsewhere / ".procorch"
    local.mkdir()
    (local / "kubeconfig").write_text(procorch.kubeconfig_path.read_text())
    _, out, _ = await run_in(elsewhere, "get", "ns")
    assert "kube-system" in out
    # --data-dir wins over $KUBECONFIG.
    code, _, err = await run_in(
        elsewhere,
        "get",
        "ns",
        "--data-dir",
        str(tmp_path / "nothing-here"),
        env={"KUBECONFIG": str(procorch.kubeconfig_path)},
        check=False,
    )
    assert code == 1 and "nothing-here" in err


async def test_messages_name_resources_as_kubectl_does(procorch, tmp_path: Path) -> None:
    path = tmp_path / "natdep.yaml"
    path.write_text(APP.replace("name: api,", "name: natdep,").replace("api-config", "natcfg"))
    _, out, _ = await run(procorch.data_dir, "apply", "-f", str(path))
    assert "deployment.apps/natdep created" in out and "configmap/natcfg created" in out
    _, out, _ = await run(procorch.data_dir, "apply", "--dry-run", "-f", str(path))
    assert "deployment.apps/natdep valid (server dry run)" in out
    _, out, _ = await run(procorch.data_dir, "get", "deploy,cm", "-l", "app=api", "-o", "name")
    assert "deployment.apps/natdep" in out.split()
    _, out, _ = await run(procorch.data_dir, "delete", "deploy/natdep", "cm/natcfg")
    assert out.splitlines() == ['deployment.apps "natdep" deleted', 'configmap "natcfg" deleted']
