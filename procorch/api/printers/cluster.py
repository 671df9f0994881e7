"""Printers for networking, discovery, coordination and RBAC kinds: Ingress, IngressClass,
EndpointSlice, Lease, RoleBinding and ClusterRoleBinding.

Role and ClusterRole have no printer in Kubernetes either: they get the default table
(NAME, CREATED AT) like any other kind without one. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from procorch.api.printers._base import (
    AGE,
    NAME,
    Cell,
    Column,
    Obj,
    Printer,
    created_age,
    dig,
    i,
    list_with_more,
    lst,
    m,
    name_of,
    s,
    wide,
)

# ------------------------------------------------------------------ Ingress, IngressClass

INGRESS_COLUMNS = (
    NAME,
    Column(
        "Class",
        description="The name of the IngressClass resource that should be used for additional "
        "configuration",
    ),
    Column("Hosts", description="Hosts that incoming requests are matched against"),
    Column("Address", description="Where the load-balancer for this Ingress listens"),
    Column("Ports", description="Ports the Ingress listens on"),
    AGE,
)


def format_hosts(rules: list[Any]) -> str:
    """Up to three rule hosts, ``+ N more...`` (N counts rules, hostless ones too), or ``*``."""
    limit, more = 3, False
    hosts: list[str] = []
    for rule in rules:
        if len(hosts) == limit:
            more = True
        host = s(m(rule).get("host"))
        if not more and host:
            hosts.append(host)
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - limit} more..." if more else text


def _ingress_address(ingress: Obj) -> str:
    found = set()
    for entry in lst(dig(ingress, "status", "loadBalancer", "ingress")):
        entry = m(entry)
        address = s(entry.get("ip")) or s(entry.get("hostname"))
        if address:
            found.add(address)
    return ",".join(sorted(found))


def ingress_cells(ingress: Obj, now: datetime) -> list[Cell]:
    spec = m(ingress.get("spec"))
    return [
        name_of(ingress),
        s(spec.get("ingressClassName")) or "<none>",
        format_hosts(lst(spec.get("rules"))),
        _ingress_address(ingress),
        "80, 443" if lst(spec.get("tls")) else "80",
        created_age(ingress, now),
    ]


INGRESSCLASS_COLUMNS = (
    NAME,
    Column("Controller", description="Controller that is responsible for handling this class"),
    Column("Parameters", description="A reference to a resource with additional parameters"),
    AGE,
)


def ingressclass_cells(ic: Obj, now: datetime) -> list[Cell]:
    spec = m(ic.get("spec"))
    params = spec.get("parameters")
    parameters = "<none>"
    if isinstance(params, Mapping):
        parameters = s(params.get("kind"))
        if params.get("apiGroup") is not None:
            parameters += "." + s(params.get("apiGroup"))
        parameters += "/" + s(params.get("name"))
    return [name_of(ic), s(spec.get("controller")), parameters, created_age(ic, now)]


# --------------------------------------------------------------------- EndpointSlice, Lease

ENDPOINTSLICE_COLUMNS = (
    NAME,
    Column("AddressType", description="The kind of address the slice carries (IPv4, IPv6, FQDN)."),
    Column("Ports", description="The ports of the endpoints."),
    Column("Endpoints", description="The addresses of the endpoints."),
    AGE,
)


def endpointslice_cells(slice_: Obj, now: datetime) -> list[Cell]:
    ports = []
    for port in lst(slice_.get("ports")):
        port = m(port)
        if port.get("port") is not None:
            ports.append(str(i(port.get("port"))))
        elif port.get("name") is not None:
            ports.append(s(port.get("name")))
        else:
            ports.append("*")
    addresses = [
        s(address) for ep in lst(slice_.get("endpoints")) for address in lst(m(ep).get("addresses"))
    ]
    return [
        name_of(slice_),
        s(slice_.get("addressType")),
        list_with_more(ports, len(ports), 3),
        list_with_more(addresses, len(addresses), 3),
        created_age(slice_, now),
    ]


LEASE_COLUMNS = (NAME, Column("Holder", description="Who holds the lease."), AGE)


def lease_cells(lease: Obj, now: datetime) -> list[Cell]:
    return [name_of(lease), s(dig(lease, "spec", "holderIdentity")), created_age(lease, now)]


# ---------------------------------------------------------------------------- Role bindings

BINDING_COLUMNS = (
    NAME,
    Column("Role", description="The role the binding grants."),
    AGE,
    wide("Users", "Users in the binding"),
    wide("Groups", "Groups in the binding"),
    wide("ServiceAccounts", "ServiceAccounts in the binding"),
)


def binding_cells(binding: Obj, now: datetime) -> list[Cell]:
    ref = m(binding.get("roleRef"))
    users, groups, accounts = [], [], []
    for subject in lst(binding.get("subjects")):
        subject = m(subject)
        kind, name = s(subject.get("kind")), s(subject.get("name"))
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            accounts.append(f"{s(subject.get('namespace'))}/{name}")
    return [
        name_of(binding),
        f"{s(ref.get('kind'))}/{s(ref.get('name'))}",
        created_age(binding, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]


INGRESS = Printer(INGRESS_COLUMNS, ingress_cells)
INGRESS_CLASS = Printer(INGRESSCLASS_COLUMNS, ingressclass_cells)
ENDPOINT_SLICE = Printer(ENDPOINTSLICE_COLUMNS, endpointslice_cells)
LEASE = Printer(LEASE_COLUMNS, lease_cells)
BINDING = Printer(BINDING_COLUMNS, binding_cells)
