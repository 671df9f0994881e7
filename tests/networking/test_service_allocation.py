"""Cluster IPs and node ports: allocated by the API server, refused when taken or out of range,
persisted, released; and the ``kubernetes`` Service that points at the API server."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from procorch.api import errors
from procorch.launcher.up import Procorch, UpConfig
from tests.conftest import Kubectl
from tests.networking.conftest import ENDPOINTS, SERVICES, SLICES, Api


def in_range(ip: str, cidr: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


async def test_cluster_ips_come_from_the_default_loopback_range(tmp_path: Path) -> None:
    async with Procorch(UpConfig(data_dir=tmp_path / "d", api_port=0, node=False)) as plane:
        svc = await Api(plane.admin).service("web", {"ports": [{"port": 80}]})
        ip = svc["spec"]["clusterIP"]
        assert in_range(ip, "127.96.0.0/12")
        assert svc["spec"]["clusterIPs"] == [ip]
        master = await plane.admin.get(SERVICES, "kubernetes", namespace="default")
        assert master["spec"]["clusterIP"] == "127.96.0.1"


async def test_a_requested_address_is_kept_and_a_taken_or_foreign_one_is_refused(
    plane: Procorch, api: Api
) -> None:
    cidr = plane.control_plane.service.allocators.service_cidr
    network = ipaddress.ip_network(cidr)
    wanted = str(network.network_address + 20)  # .10 is kube-dns's
    svc = await api.service("dns", {"clusterIP": wanted, "ports": [{"port": 53}]})
    assert svc["spec"]["clusterIP"] == wanted
    with pytest.raises(errors.Invalid) as taken:
        await api.service("other", {"clusterIP": wanted, "ports": [{"port": 53}]})
    assert taken.value.causes[0].field == "spec.clusterIPs"
    assert str(taken.value) == (
        f'Service "other" is invalid: spec.clusterIPs: Invalid value: ["{wanted}"]: '
        f"failed to allocate IP {wanted}: provided IP is already allocated"
    )
    with pytest.raises(errors.Invalid) as foreign:
        await api.service("far", {"clusterIP": "10.0.0.1", "ports": [{"port": 53}]})
    assert str(foreign.value).endswith(
        "failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. "
        f"The range of valid IPs is {cidr}"
    )
    # A refused create took nothing: the next Service gets an address, the deleted one's
    # address is free again.
    await plane.admin.delete(SERVICES, "dns", namespace="default")
    again = await api.service("dns2", {"clusterIP": wanted, "ports": [{"port": 53}]})
    assert again["spec"]["clusterIP"] == wanted


async def test_node_ports_are_allocated_refused_when_taken_and_released_on_type_change(
    plane: Procorch, api: Api
) -> None:
    svc = await api.service(
        "np", {"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}
    )
    ports = [p["nodePort"] for p in svc["spec"]["ports"]]
    assert all(30000 <= p <= 32767 for p in ports) and len(set(ports)) == 2
    with pytest.raises(errors.Invalid) as taken:
        await api.service(
            "np2", {"type": "NodePort", "ports": [{"port": 80, "nodePort": ports[0]}]}
        )
    assert str(taken.value) == (
        f'Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: {ports[0]}: '
        "provided port is already allocated"
    )
    # An update that leaves the node ports out keeps them (kubectl replace of the manifest).
    body = await plane.admin.get(SERVICES, "np", namespace="default")
    for port in body["spec"]["ports"]:
        del port["nodePort"]
    del body["spec"]["clusterIP"], body["spec"]["clusterIPs"]
    kept = await plane.admin.update(SERVICES, body, namespace="default")
    assert [p["nodePort"] for p in kept["spec"]["ports"]] == ports
    assert kept["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
    # Back to ClusterIP: the node ports go, and can be taken by another Service.
    plain = await plane.admin.patch(
        SERVICES, "np", {"spec": {"type": "ClusterIP"}}, namespace="default"
    )
    assert all("nodePort" not in p for p in plain["spec"]["ports"])
    assert "externalTrafficPolicy" not in plain["spec"]
    other = await api.service(
        "np3", {"type": "NodePort", "ports": [{"port": 80, "nodePort": ports[0]}]}
    )
    assert other["spec"]["ports"][0]["nodePort"] == ports[0]
    # ExternalName gives the address back; a dry run takes nothing.
    gone = await plane.admin.patch(
        SERVICES,
        "np",
        {"spec": {"type": "ExternalName", "externalName": "example.com"}},
        namespace="default",
    )
    assert "clusterIP" not in gone["spec"]
    dry = await plane.admin.create(
        SERVICES,
        {
            "metadata": {"name": "dry"},
            "spec": {"clusterIP": svc["spec"]["clusterIP"], "ports": [{"port": 1}]},
        },
        namespace="default",
        dry_run=True,
    )
    assert dry["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
    reused = await api.service(
        "reuse", {"clusterIP": svc["spec"]["clusterIP"], "ports": [{"port": 1}]}
    )
    assert reused["spec"]["clusterIP"] == svc["spec"]["clusterIP"]


async def test_allocations_survive_a_restart(tmp_path: Path) -> None:
    config = UpConfig(
        data_dir=tmp_path / "d", api_port=0, node=False, service_cidr="127.120.7.0/24"
    )
    async with Procorch(config) as first:
        svc = await Api(first.admin).service("keep", {"type": "NodePort", "ports": [{"port": 80}]})
    async with Procorch(config) as second:
        api = Api(second.admin)
        with pytest.raises(errors.Invalid, match="provided IP is already allocated"):
            await api.service("b", {"clusterIP": svc["spec"]["clusterIP"], "ports": [{"port": 1}]})
        node_port = svc["spec"]["ports"][0]["nodePort"]
        with pytest.raises(errors.Invalid, match="provided port is already allocated"):
            await api.service(
                "c", {"type": "NodePort", "ports": [{"port": 1, "nodePort": node_port}]}
            )
        master = await second.admin.get(SERVICES, "kubernetes", namespace="default")
        assert master["spec"]["clusterIP"] == "127.120.7.1"


async def test_the_kubernetes_service_points_at_the_api_server(plane: Procorch) -> None:
    port = plane.control_plane.http.port
    first = str(ipaddress.ip_network(plane.config.service_cidr).network_address + 1)
    svc = await plane.admin.get(SERVICES, "kubernetes", namespace="default")
    assert svc["spec"]["clusterIP"] == first
    assert svc["spec"]["ports"] == [
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}
    ]
    assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    eps = await plane.admin.get(ENDPOINTS, "kubernetes", namespace="default")
    assert eps["subsets"] == [
        {
            "addresses": [{"ip": "127.0.0.1"}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }
    ]
    slice_ = await plane.admin.get(SLICES, "kubernetes", namespace="default")
    assert slice_["endpoints"][0]["addresses"] == ["127.0.0.1"]
    assert slice_["ports"] == [{"name": "https", "port": port, "protocol": "TCP"}]
    # The serving certificate covers the Service's address and names.
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((plane.data_dir / "pki" / "apiserver.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert first in {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert "kubernetes.default.svc" in san.get_values_for_type(x509.DNSName)


@pytest.mark.kubectl
async def test_kubectl_sees_allocated_addresses_and_the_refusal(
    plane: Procorch, kubectl: Kubectl
) -> None:
    await kubectl("create", "service", "nodeport", "web", "--tcp=80:8080")
    out = (await kubectl("get", "svc", "web", "--no-headers")).stdout.split()
    assert out[1] == "NodePort"
    assert in_range(out[2], plane.config.service_cidr)
    assert out[4].startswith("80:3") and out[4].endswith("/TCP")
    manifest = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\n"
        f"spec: {{clusterIP: {out[2]}, ports: [{{port: 80}}]}}\n"
    )
    refused = await kubectl("apply", "-f", "-", input=manifest, check=False)
    assert refused.returncode != 0
    assert (
        f'The Service "clash" is invalid: spec.clusterIPs: Invalid value: ["{out[2]}"]: '
        f"failed to allocate IP {out[2]}: provided IP is already allocated"
    ) in refused.stderr
