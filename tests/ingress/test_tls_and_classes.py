"""HTTPS with a certificate per host (SNI), IngressClass filtering, and Ingress status."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.x509.oid import NameOID

from procorch.proxy.ingress import IngressRouter
from procorch.proxy.ingress.tls import self_signed
from tests.conftest import Kubectl
from tests.ingress.conftest import (
    CLASSES,
    INGRESSES,
    SECRETS,
    Api,
    Backend,
    eventually,
    get,
    routed,
    rule,
)

Start = Callable[..., Awaitable[Backend]]


async def tls_secret(api: Api, name: str, *hosts: str) -> bytes:
    cert, key = self_signed(hosts[0], hosts)
    await api.client.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64.b64encode(cert).decode(),
                "tls.key": base64.b64encode(key).decode(),
            },
        },
        namespace="default",
    )
    return cert


async def https_get(port: int, server_name: str, path: str = "/") -> tuple[str, bytes]:
    """GET over TLS with this SNI name; returns the certificate's CN and the raw answer."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_name
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode()
        )
        async with asyncio.timeout(5):
            answer = await reader.read()
        return str(cn), answer
    finally:
        writer.close()


async def test_https_picks_the_certificate_by_sni(
    router: IngressRouter, api: Api, backends: Start
) -> None:
    backend = await backends("web")
    await api.service("web", [backend.addr])
    await tls_secret(api, "a-cert", "a.test")
    await tls_secret(api, "b-cert", "*.b.test")
    await api.ingress(
        "secure",
        {
            "tls": [
                {"hosts": ["a.test"], "secretName": "a-cert"},
                {"hosts": ["*.b.test"], "secretName": "b-cert"},
            ],
            "rules": [rule("/", "web", host="a.test"), rule("/", "web", host="*.b.test")],
        },
    )
    assert router.tls_port

    async def served() -> bool:
        return (await https_get(router.tls_port, "a.test"))[0] == "a.test"

    await eventually(served)
    cn, answer = await https_get(router.tls_port, "a.test", "/x")
    assert answer.startswith(b"HTTP/1.1 200")
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["headers"]["X-Forwarded-Proto"] == "https"
    assert body["headers"]["X-Forwarded-Port"] == str(router.tls_port)
    assert (await https_get(router.tls_port, "x.b.test"))[0] == "*.b.test"
    cn, answer = await https_get(router.tls_port, "unknown.test")
    assert cn == "procorch ingress default certificate"
    assert answer.startswith(b"HTTP/1.1 404")


async def test_the_default_class_is_created_and_other_classes_are_ignored(
    router: IngressRouter, api: Api, backends: Start, session: aiohttp.ClientSession
) -> None:
    ours = await api.client.get(CLASSES, "procorch")
    assert ours["spec"]["controller"] == "procorch.io/ingress"
    assert ours["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    await api.client.create(
        CLASSES,
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "other"},
            "spec": {"controller": "example.com/other"},
        },
    )
    backend = await backends("web")
    await api.service("web", [backend.addr])
    await api.ingress("classless", {"rules": [rule("/mine", "web")]})
    await api.ingress(
        "explicit", {"ingressClassName": "procorch", "rules": [rule("/explicit", "web")]}
    )
    await api.ingress("foreign", {"ingressClassName": "other", "rules": [rule("/theirs", "web")]})
    await routed(session, f"{router.url}/mine")
    await routed(session, f"{router.url}/explicit")
    assert (await get(session, f"{router.url}/theirs"))[0] == 404

    expected = [{"ip": "127.0.0.1", "ports": [{"port": router.port, "protocol": "TCP"}]}]

    async def status_of(name: str) -> Any:
        ingress = await api.client.get(INGRESSES, name, namespace="default")
        return ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress")

    async def written() -> bool:
        return await status_of("classless") == expected and await status_of("explicit") == expected

    await eventually(written)
    assert await status_of("foreign") is None
    # Moving an Ingress to another class takes its routes and our status away.
    await api.client.patch(
        INGRESSES, "explicit", {"spec": {"ingressClassName": "other"}}, namespace="default"
    )
    await routed(session, f"{router.url}/explicit", status=404)

    async def cleared() -> bool:
        return await status_of("explicit") is None

    await eventually(cleared)


async def test_kubectl_shows_the_ingress_address(
    router: IngressRouter, api: Api, backends: Start, kubectl: Kubectl
) -> None:
    backend = await backends("web")
    await api.service("web", [backend.addr])
    await tls_secret(api, "cert", "shop.test")
    await api.ingress(
        "shop",
        {
            "tls": [{"hosts": ["shop.test"], "secretName": "cert"}],
            "rules": [rule("/", "web", host="shop.test")],
        },
    )

    async def shown() -> bool:
        out = (await kubectl("get", "ingress", "shop", "--no-headers")).stdout.split()
        return out[:4] == ["shop", "procorch", "shop.test", "127.0.0.1"]  # the default class

    await eventually(shown)
    status = json.loads(
        (await kubectl("get", "ingress", "shop", "-o", "jsonpath={.status.loadBalancer}")).stdout
    )
    ports = [p["port"] for p in status["ingress"][0]["ports"]]
    assert ports == [router.port, router.tls_port]


async def test_an_ingress_without_a_class_gets_the_default_one(procorch) -> None:
    from procorch.api.resources import must

    await procorch.admin.create(
        must("networking.k8s.io/ingressclasses"),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {
                "name": "the-default",
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": "procorch.io/ingress"},
        },
    )
    created = await procorch.admin.create(
        must("networking.k8s.io/ingresses"),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "plain"},
            "spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 80}}}},
        },
        namespace="default",
    )
    assert created["spec"]["ingressClassName"] == "the-default"
