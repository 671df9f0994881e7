"""The informer factory holds one watch per resource, and each view of it behaves exactly as a
private informer watching with the view's selectors would: checked side by side with such a
private informer against the real API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from procorch.api.resources import ResourceType, must
from procorch.apiserver.auth import SYSTEM
from procorch.apiserver.controlplane import ControlPlane
from procorch.client.base import WatchEvent
from procorch.client.local import LocalClient
from procorch.kit.tasks import TaskSet
from procorch.reconcile.factory import EVERYTHING, InformerFactory, Selectors
from procorch.reconcile.informer import Informer
from procorch.reconcile.views import InformerView

CONFIGMAPS = must("core/configmaps")
PODS = must("core/pods")
SECRETS = must("core/secrets")

Event = tuple[str, str, str | None]  # type, name, resourceVersion of the previous object


class CountingClient(LocalClient):
    """The in-process client, counting the watches opened per resource."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.watches: dict[str, int] = {}

    async def watch(self, rt: ResourceType, **kw: Any) -> AsyncIterator[WatchEvent]:  # type: ignore[override]
        self.watches[rt.key] = self.watches.get(rt.key, 0) + 1
        async for event in super().watch(rt, **kw):
            yield event


class Plane:
    def __init__(self, client: CountingClient, tasks: TaskSet) -> None:
        self.client = client
        self.tasks = tasks

    def factory(self, scope: dict[ResourceType, Selectors] | None = None) -> InformerFactory:
        return InformerFactory(self.client, self.tasks, scope=scope)

    def private(self, rt: ResourceType, *, label: str = "", field: str = "") -> Informer:
        informer = Informer(self.client, rt, label_selector=label, field_selector=field)
        self.tasks.start(f"private:{rt.key}", informer.run())
        return informer


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Plane]:
    control = ControlPlane(tmp_path / "cp", port=0)
    (tmp_path / "cp").mkdir()
    await control.start()
    tasks = TaskSet("test")
    try:
        yield Plane(CountingClient(control.service, user=SYSTEM), tasks)
    finally:
        await tasks.stop(timeout=5)
        await control.stop()


def recorder(into: list[Event]) -> Callable[[str, dict[str, Any], dict[str, Any] | None], None]:
    def record(etype: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        previous = None if old is None else str(old["metadata"]["resourceVersion"])
        into.append((etype, str(obj["metadata"]["name"]), previous))

    return record


def names(objs: list[dict[str, Any]]) -> list[str]:
    return sorted(str(o["metadata"]["name"]) for o in objs)


def first_label(obj: dict[str, Any]) -> list[str]:
    return sorted((obj["metadata"].get("labels") or {}).values())[:1]


async def settle(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "not in time"
        await asyncio.sleep(0.01)


def configmap(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
    }


def pod(name: str, node: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "command": ["sleep", "1"]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def test_views_of_a_resource_share_the_one_watch_of_the_process(plane: Plane) -> None:
    factory = plane.factory()
    views = [
        factory.get(SECRETS),
        factory.get(SECRETS, field_selector="type=kubernetes.io/tls"),
        factory.get(SECRETS, label_selector="app"),
        factory.get(CONFIGMAPS),
    ]
    await factory.wait_synced(views)
    assert factory.watched() == {"core/secrets": EVERYTHING, "core/configmaps": EVERYTHING}
    assert plane.client.watches == {"core/secrets": 1, "core/configmaps": 1}


async def test_a_narrower_view_reads_and_hears_what_a_private_informer_would(
    plane: Plane,
) -> None:
    """Objects move into and out of a ``has key`` label selection, get deleted inside and
    outside it: the view's events, reads and index answers are the private informer's."""
    client = plane.client
    await client.create(CONFIGMAPS, configmap("before-in", {"svc": "a"}), namespace="default")
    await client.create(CONFIGMAPS, configmap("before-out", {}), namespace="default")
    private = plane.private(CONFIGMAPS, label="svc")
    factory = plane.factory()
    everything = factory.get(CONFIGMAPS)
    view = factory.get(CONFIGMAPS, label_selector="svc")
    await asyncio.gather(private.synced.wait(), view.synced.wait())
    heard_private: list[Event] = []
    heard_view: list[Event] = []
    heard_all: list[Event] = []
    replay: list[Event] = []
    private_view = InformerView(private, None)
    private_view.add_handler(recorder(heard_private))
    private.add_index("first", first_label)
    view.add_index("first", first_label)
    view.add_handler(recorder(heard_view))
    everything.add_handler(recorder(heard_all))

    def same_reads() -> None:
        assert names(view.list()) == names(private.list())
        assert names(view.list("default")) == names(private.list("default"))
        assert len(view) == len(private)
        for name in ("before-in", "before-out", "joins", "leaves", "never"):
            assert view.get(name, "default") == private.get(name, "default"), name
        for value in ("a", "b", "x"):
            assert names(view.by_index("first", value)) == names(private.by_index("first", value))

    same_reads()
    created = await client.create(CONFIGMAPS, configmap("joins", {}), namespace="default")
    await client.create(CONFIGMAPS, configmap("leaves", {"svc": "b"}), namespace="default")
    await client.create(CONFIGMAPS, configmap("never", {"other": "x"}), namespace="default")
    created["metadata"]["labels"] = {"svc": "x"}
    await client.update(CONFIGMAPS, created, namespace="default")
    await client.patch(
        CONFIGMAPS, "leaves", {"metadata": {"labels": {"svc": None}}}, namespace="default"
    )
    await client.patch(
        CONFIGMAPS, "joins", {"metadata": {"labels": {"svc": "b"}}}, namespace="default"
    )
    await client.delete(CONFIGMAPS, "leaves", namespace="default")
    await client.delete(CONFIGMAPS, "before-in", namespace="default")
    await client.delete(CONFIGMAPS, "never", namespace="default")
    await settle(lambda: len(heard_all) == 11 and len(heard_private) == 6)
    await asyncio.sleep(0.05)
    assert heard_view == heard_private
    assert [e[:2] for e in heard_view] == [
        ("ADDED", "before-in"),
        ("ADDED", "leaves"),
        ("ADDED", "joins"),  # the label arrives
        ("DELETED", "leaves"),  # the label goes
        ("MODIFIED", "joins"),
        ("DELETED", "before-in"),
    ]
    same_reads()
    # A later handler is first told of everything the view sees, and only that.
    view.add_handler(recorder(replay))
    assert sorted(replay) == sorted(("ADDED", name, None) for name in names(private.list()))


async def test_a_pod_bound_to_the_node_is_added_to_the_nodes_view(plane: Plane) -> None:
    """``spec.nodeName=<node>`` on a factory that watches every pod: a binding is an ADDED,
    as the field-selected watch of a node's own pods reports it."""
    client = plane.client
    factory = plane.factory()
    everything = factory.get(PODS)
    mine = factory.get(PODS, field_selector="spec.nodeName=a")
    private = plane.private(PODS, field="spec.nodeName=a")
    await asyncio.gather(private.synced.wait(), mine.synced.wait(), everything.synced.wait())
    heard_view: list[Event] = []
    heard_private: list[Event] = []
    mine.add_handler(recorder(heard_view))
    InformerView(private, None).add_handler(recorder(heard_private))
    await client.create(PODS, pod("elsewhere", node="b"), namespace="default")
    await client.create(PODS, pod("pending"), namespace="default")
    await client.bind("default", "pending", "a")
    await client.create(PODS, pod("here", node="a"), namespace="default")
    await client.delete(PODS, "elsewhere", namespace="default", grace_period_seconds=0)
    await client.delete(PODS, "here", namespace="default", grace_period_seconds=0)
    await settle(lambda: ("DELETED", "here") in [e[:2] for e in heard_private])
    await asyncio.sleep(0.05)
    assert heard_view == heard_private
    assert [e[:2] for e in heard_view][:2] == [("ADDED", "pending"), ("ADDED", "here")]
    assert names(mine.list()) == names(private.list()) == ["pending"]
    assert names(everything.list()) == ["pending"]
    assert mine.get("elsewhere", "default") is None


async def test_a_scoped_factory_serves_what_its_watch_covers_and_refuses_the_rest(
    plane: Plane,
) -> None:
    """A node on another machine watches only its own pods: views of them are served by that
    one watch, unfiltered or narrower; asking for every pod is a programming error."""
    factory = plane.factory({PODS: Selectors(field="spec.nodeName=a")})
    await plane.client.create(PODS, pod("here", node="a"), namespace="default")
    await plane.client.create(PODS, pod("there", node="b"), namespace="default")
    own = factory.get(PODS, field_selector="spec.nodeName=a")
    narrower = factory.get(PODS, field_selector="spec.nodeName=a,metadata.name!=here")
    with pytest.raises(ValueError, match="does not cover"):
        factory.get(PODS)
    with pytest.raises(ValueError, match="does not cover"):
        factory.get(PODS, field_selector="spec.nodeName=b")
    await factory.wait_synced()
    assert names(own.list()) == ["here"] and narrower.list() == []
    assert factory.watched() == {"core/pods": Selectors(field="spec.nodeName=a")}
    assert plane.client.watches == {"core/pods": 1}


async def test_a_closed_view_hears_nothing_more(plane: Plane) -> None:
    factory = plane.factory()
    stopped, running = factory.get(CONFIGMAPS), factory.get(CONFIGMAPS)
    await factory.wait_synced()
    heard_stopped: list[Event] = []
    heard_running: list[Event] = []
    stopped.add_handler(recorder(heard_stopped))
    running.add_handler(recorder(heard_running))
    await plane.client.create(CONFIGMAPS, configmap("one", {}), namespace="default")
    await settle(lambda: len(heard_stopped) == 1)
    stopped.close()
    await plane.client.create(CONFIGMAPS, configmap("two", {}), namespace="default")
    await settle(lambda: len(heard_running) == 2)
    assert [e[1] for e in heard_stopped] == ["one"]
    assert names(stopped.list()) == ["one", "two"]  # reads go on


async def test_one_index_name_means_one_function_in_the_process(plane: Plane) -> None:
    factory = plane.factory()
    first, second = factory.get(CONFIGMAPS), factory.get(CONFIGMAPS)
    first.add_index("labels", first_label)
    second.add_index("labels", first_label)  # the same function: shared
    with pytest.raises(ValueError, match="already defined"):
        second.add_index("labels", lambda obj: [])
