"""A pod's name service: its ``/etc/resolv.conf``, ``/etc/hosts`` and hostname, as kubelet
makes them (``pkg/kubelet/network/dns``, ``managedHostsFileContent``).

* ``dnsPolicy``: ``ClusterFirst`` (the default) points the pod at cluster DNS with the search
  path ``<ns>.svc.<domain> svc.<domain> <domain>`` (then the host's) and ``ndots:5``; a
  ``hostNetwork`` pod with ``ClusterFirst`` gets the host's resolvers instead, as with
  ``Default``; ``ClusterFirstWithHostNet`` gets cluster DNS either way; ``None`` gets only its
  ``dnsConfig``. ``dnsConfig``'s nameservers, searches and options are merged in after (an
  option of the same name replaces the policy's). At most 3 nameservers and 32 search domains,
  as Kubernetes keeps.
* ``/etc/hosts``: localhost, and the pod's IP with its hostname (and
  ``<hostname>.<subdomain>.<ns>.svc.<domain>``), then ``hostAliases``.
* The hostname is ``spec.hostname`` or the pod's name (cut to 63 characters).

The files are written into the pod's directory and bind-mounted over ``/etc/resolv.conf`` and
``/etc/hosts`` in each container's private mount namespace, as volumes are; the hostname is
set in a UTS namespace of the container's own. A ``hostNetwork`` pod keeps the host's files and
hostname. Where the machine allows no mount namespace, or this node serves no cluster DNS, the
pod starts with the host's resolvers and :attr:`PodDNS.warning` says why (an Event); without
cluster DNS, a pod that asks for nothing of its own (``dnsConfig``, ``hostAliases``,
``hostname``, ``subdomain``, ``dnsPolicy: None``) keeps the host's files and hostname.

Concurrency: pure, except :meth:`NodeDNS.prepare` (writes two small files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procorch.agent.runtime.spec import Mount
from procorch.kit.resolvconf import ResolvConf

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
CLUSTER_NDOTS = "ndots:5"

_HOSTS_HEADER = """# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""


@dataclass(frozen=True)
class PodDNS:
    resolv_conf: ResolvConf | None
    """What the pod's ``/etc/resolv.conf`` says; None: the host's, as it is."""
    hosts: str | None
    """The pod's ``/etc/hosts``; None: the host's."""
    hostname: str | None
    """Set in the container's UTS namespace; None: the host's."""
    warning: str = ""


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _merge_options(base: list[str], extra: list[dict[str, Any]]) -> list[str]:
    merged: dict[str, str] = {}
    for text in base:
        merged[text.partition(":")[0]] = text
    for option in extra:
        name = str(option.get("name") or "")
        if not name:
            continue
        value = option.get("value")
        merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return list(merged.values())


def hostname_of(pod: dict[str, Any]) -> str:
    """``spec.hostname``, else the pod's name cut to 63 characters without a trailing ``-``
    or ``.`` (kubelet's ``truncatePodHostnameIfNeeded``)."""
    spec = pod.get("spec") or {}
    if spec.get("hostname"):
        return str(spec["hostname"])
    name = str((pod.get("metadata") or {}).get("name") or "")
    return name[:63].rstrip("-.") if len(name) > 63 else name


def resolv_conf_for(
    pod: dict[str, Any], *, cluster_dns: list[str], domain: str, host: ResolvConf
) -> tuple[ResolvConf, str]:
    """The pod's resolver configuration, and a warning when cluster DNS was asked for and
    cannot be given (the host's is used then)."""
    spec = pod.get("spec") or {}
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    warning = ""
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        warning = "this node serves no cluster DNS; the pod resolves with the host's resolvers"
        policy = "Default"
    if policy == "None":
        nameservers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
    elif policy == "Default":
        nameservers, searches, options = list(host.nameservers), list(host.searches), []
        options = list(host.options)
    else:
        nameservers = list(cluster_dns)
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *host.searches]
        options = [CLUSTER_NDOTS]
    config = spec.get("dnsConfig") or {}
    nameservers = _unique(nameservers + [str(n) for n in config.get("nameservers") or []])
    searches = _unique(searches + [str(s) for s in config.get("searches") or []])
    options = _merge_options(options, list(config.get("options") or []))
    return (
        ResolvConf(
            tuple(nameservers[:MAX_NAMESERVERS]),
            tuple(searches[:MAX_SEARCHES]),
            tuple(options),
        ),
        warning,
    )


def hosts_file_for(
    pod: dict[str, Any], *, pod_ip: str, domain: str, host_file: str | None = None
) -> str:
    """The pod's /etc/hosts; with ``host_file`` (a host-network pod), the host's own file
    with the pod's ``hostAliases`` after it, as kubelet makes it."""
    spec = pod.get("spec") or {}
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    hostname = hostname_of(pod)
    lines = [_HOSTS_HEADER if host_file is None else host_file.rstrip("\n") + "\n"]
    if pod_ip and host_file is None:
        subdomain = spec.get("subdomain")
        if subdomain:
            fqdn = f"{hostname}.{subdomain}.{namespace}.svc.{domain}"
            lines.append(f"{pod_ip}\t{fqdn}\t{hostname}\n")
        else:
            lines.append(f"{pod_ip}\t{hostname}\n")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("\n# Entries added by HostAliases.\n")
        for alias in aliases:
            names = "\t".join(str(n) for n in alias.get("hostnames") or [])
            if alias.get("ip") and names:
                lines.append(f"{alias['ip']}\t{names}\n")
    return "".join(lines)


@dataclass
class NodeDNS:
    """What the node gives every pod: cluster DNS's addresses on this node, its domain, the
    host's resolvers, and whether containers can have files mounted over theirs."""

    cluster_dns: list[str]
    domain: str
    host: ResolvConf
    mounts_possible: bool

    @classmethod
    def load(
        cls, *, cluster_dns: list[str], domain: str, resolv_conf: Path, mounts_possible: bool
    ) -> NodeDNS:
        return cls(list(cluster_dns), domain, ResolvConf.read(resolv_conf), mounts_possible)

    def for_pod(self, pod: dict[str, Any], *, pod_ip: str) -> PodDNS:
        spec = pod.get("spec") or {}
        resolv, warning = resolv_conf_for(
            pod, cluster_dns=self.cluster_dns, domain=self.domain, host=self.host
        )
        if spec.get("hostNetwork"):
            hosts = None
            if spec.get("hostAliases"):
                hosts = hosts_file_for(
                    pod, pod_ip=pod_ip, domain=self.domain, host_file=_read("/etc/hosts")
                )
            return PodDNS(
                resolv if spec.get("dnsPolicy") == "ClusterFirstWithHostNet" else None,
                hosts,
                None,
                warning,
            )
        return PodDNS(
            resolv,
            hosts_file_for(pod, pod_ip=pod_ip, domain=self.domain),
            hostname_of(pod),
            warning,
        )

    def prepare(
        self, pod: dict[str, Any], *, pod_ip: str, pod_dir: Path
    ) -> tuple[list[Mount], str | None, str]:
        """Write the pod's files under ``pod_dir/etc``: (mounts, hostname, warning)."""
        dns = self.for_pod(pod, pod_ip=pod_ip)
        spec = pod.get("spec") or {}
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        wants_cluster = policy in ("ClusterFirst", "ClusterFirstWithHostNet")
        asked = policy == "None" or any(
            spec.get(f) for f in ("dnsConfig", "hostAliases", "hostname", "subdomain")
        )
        if not self.cluster_dns and not asked:
            # Nothing the host's own files would not give: no namespaces for it (a process
            # in a user namespace is not quite a plain process of the host's).
            return [], None, dns.warning
        if not self.mounts_possible:
            warning = dns.warning
            if wants_cluster and dns.resolv_conf is not None and not warning:
                warning = (
                    "cluster DNS is unavailable to this pod: the machine allows procorch no "
                    "private mount namespace for its /etc/resolv.conf (not root, no user "
                    "namespaces); it resolves with the host's resolvers"
                )
            return [], None, warning
        mounts: list[Mount] = []
        etc = pod_dir / "etc"
        if dns.resolv_conf is not None:
            mounts.append(
                Mount(
                    str(self._write(etc / "resolv.conf", dns.resolv_conf.render())),
                    "/etc/resolv.conf",
                    read_only=True,
                )
            )
        if dns.hosts is not None:
            mounts.append(
                Mount(str(self._write(etc / "hosts", dns.hosts)), "/etc/hosts", read_only=True)
            )
        return mounts, dns.hostname, dns.warning

    @staticmethod
    def _write(path: Path, text: str) -> Path:
        """Write ``text`` to ``path`` unless it is there already (a file bind-mounted into a
        running container is its inode: rewritten, the container would not see it)."""
        try:
            if path.read_text() == text:
                return path
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return path


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
