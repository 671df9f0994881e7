"""A pod's resolv.conf, hosts file and hostname, policy by policy, as kubelet forms them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from procorch.agent.poddns import NodeDNS, hostname_of, hosts_file_for, resolv_conf_for
from procorch.kit.resolvconf import ResolvConf

HOST = ResolvConf.parse(
    "# the machine's\nnameserver 10.0.0.53\nnameserver 10.0.0.54\nsearch corp.example\n"
    "options timeout:2\n"
)


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-7f9", "namespace": "shop"}, "spec": spec}


def conf(p: dict[str, Any], cluster: list[str] | None = None) -> tuple[ResolvConf, str]:
    return resolv_conf_for(
        p,
        cluster_dns=["127.96.0.10"] if cluster is None else cluster,
        domain="cluster.local",
        host=HOST,
    )


def test_cluster_first_searches_the_namespace_then_the_cluster_then_the_host() -> None:
    resolv, warning = conf(pod())
    assert warning == ""
    assert resolv.render() == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "nameserver 127.96.0.10\noptions ndots:5\n"
    )


@pytest.mark.parametrize(
    ("spec", "nameservers"),
    [
        ({"dnsPolicy": "Default"}, ("10.0.0.53", "10.0.0.54")),
        ({"hostNetwork": True}, ("10.0.0.53", "10.0.0.54")),  # ClusterFirst on the host net
        ({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}, ("127.96.0.10",)),
    ],
)
def test_default_and_host_network_pods_use_the_hosts_resolvers(
    spec: dict[str, Any], nameservers: tuple[str, ...]
) -> None:
    assert conf(pod(**spec))[0].nameservers == nameservers


def test_dns_config_is_merged_after_the_policy_and_none_takes_only_it() -> None:
    config = {
        "nameservers": ["1.1.1.1", "127.96.0.10"],
        "searches": ["extra.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    resolv, _ = conf(pod(dnsConfig=config))
    assert resolv.nameservers == ("127.96.0.10", "1.1.1.1")
    assert resolv.searches[-1] == "extra.example"
    assert resolv.options == ("ndots:2", "edns0")
    resolv, _ = conf(pod(dnsPolicy="None", dnsConfig=config))
    assert resolv == ResolvConf(
        ("1.1.1.1", "127.96.0.10"), ("extra.example",), ("ndots:2", "edns0")
    )


def test_kubernetes_limits_three_nameservers_and_32_searches() -> None:
    config = {
        "nameservers": [f"10.1.0.{i}" for i in range(5)],
        "searches": [f"s{i}.example" for i in range(40)],
    }
    resolv, _ = conf(pod(dnsPolicy="None", dnsConfig=config))
    assert len(resolv.nameservers) == 3 and len(resolv.searches) == 32


def test_without_cluster_dns_on_the_node_cluster_first_falls_back_to_the_host_and_says_so() -> None:
    resolv, warning = conf(pod(), cluster=[])
    assert resolv.nameservers == HOST.nameservers and "serves no cluster DNS" in warning


def test_hosts_file_names_the_pod_and_its_subdomain_then_host_aliases() -> None:
    text = hosts_file_for(
        pod(
            hostname="db-0",
            subdomain="db",
            hostAliases=[{"ip": "10.9.9.9", "hostnames": ["a", "b"]}],
        ),
        pod_ip="127.1.0.7",
        domain="cluster.local",
    )
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "127.1.0.7\tdb-0.db.shop.svc.cluster.local\tdb-0\n" in text
    assert text.endswith("# Entries added by HostAliases.\n10.9.9.9\ta\tb\n")
    assert "127.1.0.7\tweb-7f9\n" in hosts_file_for(pod(), pod_ip="127.1.0.7", domain="x")


def test_files_are_mounted_where_mount_namespaces_are_possible_else_an_event_says_why(
    tmp_path: Path,
) -> None:
    node = NodeDNS(["127.96.0.10"], "cluster.local", HOST, mounts_possible=True)
    mounts, hostname, warning = node.prepare(pod(), pod_ip="127.1.0.7", pod_dir=tmp_path)
    assert [(m.target, m.read_only) for m in mounts] == [
        ("/etc/resolv.conf", True),
        ("/etc/hosts", True),
    ]
    assert Path(mounts[0].source).read_text().startswith("search shop.svc.cluster.local")
    assert hostname == "web-7f9" and warning == ""
    host_net = node.prepare(pod(hostNetwork=True), pod_ip="10.0.0.5", pod_dir=tmp_path)
    assert host_net == ([], None, "")
    node.mounts_possible = False
    mounts, hostname, warning = node.prepare(pod(), pod_ip="127.1.0.7", pod_dir=tmp_path)
    assert mounts == [] and hostname is None and "cluster DNS is unavailable" in warning


def test_without_cluster_dns_a_pod_that_asks_for_nothing_keeps_the_hosts_files(
    tmp_path: Path,
) -> None:
    node = NodeDNS([], "cluster.local", HOST, mounts_possible=True)
    mounts, hostname, warning = node.prepare(pod(), pod_ip="127.1.0.7", pod_dir=tmp_path)
    assert (mounts, hostname) == ([], None) and "serves no cluster DNS" in warning
    mounts, hostname, _ = node.prepare(
        pod(hostname="db-0", dnsPolicy="Default"), pod_ip="127.1.0.7", pod_dir=tmp_path
    )
    assert [m.target for m in mounts] == ["/etc/resolv.conf", "/etc/hosts"] and hostname == "db-0"


def test_a_long_pod_name_is_cut_to_63_characters_without_a_trailing_dash() -> None:
    name = "a" * 62 + "-b"
    assert hostname_of({"metadata": {"name": name}, "spec": {}}) == "a" * 62
    assert hostname_of({"metadata": {"name": "web"}, "spec": {"hostname": "h"}}) == "h"


def test_a_host_network_pod_gets_the_hosts_file_with_its_aliases(tmp_path: Path) -> None:
    node = NodeDNS(["127.96.0.10"], "cluster.local", HOST, mounts_possible=True)
    aliases = [{"ip": "10.9.9.9", "hostnames": ["db.local"]}]
    mounts, hostname, _ = node.prepare(
        pod(hostNetwork=True, hostAliases=aliases), pod_ip="10.0.0.5", pod_dir=tmp_path
    )
    assert [m.target for m in mounts] == ["/etc/hosts"] and hostname is None
    text = Path(mounts[0].source).read_text()
    assert text.startswith(Path("/etc/hosts").read_text().rstrip("\n"))
    assert text.endswith("# Entries added by HostAliases.\n10.9.9.9\tdb.local\n")
