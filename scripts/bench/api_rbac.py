"""Authorization at scale (issue 15): requests/s of a non-admin user whom RBAC allows, in a
cluster with 200 roles and 1,000 bindings to other subjects, beside the admin's
(``system:masters``, decided without RBAC) in the same run, interleaved.

Run through ``./scripts/bench/api --only rbac``. Target: the user's rate >= 0.9x the admin's
(a decision looks up the user's own bindings, never scans them all).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from _common import Server, configmap

from procorch.kit.tokens import KEY_FILE, TokenSigner, user_claims

RBAC = "/apis/rbac.authorization.k8s.io/v1"
ROLES, BINDINGS, NAMESPACES = 200, 1000, 10


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, object]) -> None:
    async with session.post(url, json=body) as r:
        assert r.status == 201, await r.text()


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}


async def _policy(session: aiohttp.ClientSession, url: str) -> None:
    """200 roles (100 ClusterRoles, 10 Roles in each of 10 namespaces) and 1,000 bindings to
    other users and groups, then the measured user's own: ``view`` in namespace ``rb0``."""
    for n in range(NAMESPACES):
        await _post(session, f"{url}/api/v1/namespaces", {"metadata": {"name": f"rb{n}"}})
    rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
    per_namespace = ROLES // 2 // NAMESPACES
    creates = [
        _post(
            session, f"{url}{RBAC}/clusterroles", {"metadata": {"name": f"c-{i}"}, "rules": [rule]}
        )
        for i in range(ROLES // 2)
    ]
    creates += [
        _post(
            session,
            f"{url}{RBAC}/namespaces/rb{n}/roles",
            {"metadata": {"name": f"r-{i}", "namespace": f"rb{n}"}, "rules": [rule]},
        )
        for n in range(NAMESPACES)
        for i in range(per_namespace)
    ]
    await asyncio.gather(*creates)
    creates = []
    for i in range(BINDINGS):
        subject = {"kind": "User" if i % 3 else "Group", "name": f"someone-{i}"}
        if i % 4 == 0:
            body = {
                "metadata": {"name": f"b-{i}"},
                "roleRef": _ref("ClusterRole", f"c-{i % (ROLES // 2)}"),
                "subjects": [subject],
            }
            creates.append(_post(session, f"{url}{RBAC}/clusterrolebindings", body))
            continue
        ns = f"rb{i % NAMESPACES}"
        ref = (
            _ref("Role", f"r-{i % per_namespace}") if i % 2 else _ref("ClusterRole", f"c-{i % 100}")
        )
        body = {
            "metadata": {"name": f"b-{i}", "namespace": ns},
            "roleRef": ref,
            "subjects": [subject],
        }
        creates.append(_post(session, f"{url}{RBAC}/namespaces/{ns}/rolebindings", body))
    await asyncio.gather(*creates)
    await _post(
        session,
        f"{url}{RBAC}/namespaces/rb0/rolebindings",
        {
            "metadata": {"name": "bench-user-view"},
            "roleRef": _ref("ClusterRole", "view"),
            "subjects": [{"kind": "User", "name": "bench-user"}],
        },
    )


async def _gets(session: aiohttp.ClientSession, url: str, token: str, count: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    left = iter(range(count))

    async def worker() -> None:
        for _ in left:
            async with session.get(url, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"{r.status}: {await r.text()}")
                await r.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(50)))
    return count / (time.perf_counter() - started)


async def authorization(session: aiohttp.ClientSession, server: Server) -> list[str]:
    url = server.url
    await _policy(session, url)
    async with session.post(
        f"{url}/api/v1/namespaces/rb0/configmaps", data=configmap("rb0", "c")
    ) as r:
        assert r.status == 201, await r.text()
    signer = TokenSigner.load_or_create(server.data_dir / KEY_FILE)
    user = signer.sign(user_claims("bench-user", [], seconds=3600))
    target = f"{url}/api/v1/namespaces/rb0/configmaps/c"
    deadline = time.monotonic() + 10
    while True:  # the binding takes effect when its watch event arrives
        async with session.get(target, headers={"Authorization": f"Bearer {user}"}) as r:
            if r.status == 200:
                break
        assert time.monotonic() < deadline, "the user's binding never took effect"
        await asyncio.sleep(0.01)
    admin_rates, user_rates = [], []
    for _ in range(3):  # interleaved, so that a slow moment of the machine hits both
        admin_rates.append(await _gets(session, target, server.token, 5000))
        user_rates.append(await _gets(session, target, user, 5000))
    admin, user_rate = max(admin_rates), max(user_rates)
    return [
        f"| GET a ConfigMap, 50 clients, admin (system:masters; best of 3 x 5,000) | {admin:,.0f}/s |",
        f"| GET a ConfigMap, 50 clients, a user RBAC allows, {ROLES} roles and {BINDINGS:,} "
        f"bindings in the cluster | {user_rate:,.0f}/s ({user_rate / admin:.2f}x) |",
    ]
