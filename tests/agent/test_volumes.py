"""Pod volumes on a real file system (tmp_path), laid out and updated as the kubelet does."""

from __future__ import annotations

import base64
import os
import socket
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from procorch.agent.podenv import ConfigError
from procorch.agent.volumes import Mount, VolumeError, VolumeManager, write_atomic


@dataclass
class Objects:
    """The agent's informer caches, as plain dicts keyed by (namespace, name)."""

    config_maps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pvcs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get((namespace, name))

    def pvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pvcs.get((namespace, name))


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def make_pod(volumes: list[dict[str, Any]], *, uid: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "uid": uid or str(uuid.uuid4()),
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"build": "42"},
        },
        "spec": {"containers": [{"name": "app", "command": ["run"]}], "volumes": volumes},
    }


@pytest.fixture
def objects() -> Objects:
    return Objects()


class IssuedTokens:
    """The tokens the agent fetched, by (pod uid, audience, seconds)."""

    def __init__(self) -> None:
        self.issued: dict[tuple[str, str, int], str] = {}

    def token(self, pod_uid: str, audience: str, seconds: int) -> str | None:
        return self.issued.get((pod_uid, audience, seconds))


@pytest.fixture
def tokens() -> IssuedTokens:
    return IssuedTokens()


@pytest.fixture
def manager(tmp_path: Path, objects: Objects, tokens: IssuedTokens) -> VolumeManager:
    return VolumeManager(tmp_path / "data", objects, shm=tmp_path / "shm", tokens=tokens)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- emptyDir and hostPath ----------------------------------------------------------------------


def test_empty_dir_lives_under_the_pod_directory(manager: VolumeManager, tmp_path: Path) -> None:
    pod = make_pod([{"name": "scratch", "emptyDir": {}}])
    paths = manager.prepare(pod)
    uid = pod["metadata"]["uid"]
    expected = tmp_path / "data/pods" / uid / "volumes/kubernetes.io~empty-dir/scratch"
    assert paths == {"scratch": expected}
    assert expected.is_dir()
    assert mode_of(expected) == 0o777
    assert manager.pod_dirs() == {uid}


def test_memory_empty_dir_goes_to_shm_and_is_cleaned_up(
    manager: VolumeManager, tmp_path: Path
) -> None:
    pod = make_pod([{"name": "cache", "emptyDir": {"medium": "Memory"}}])
    uid = pod["metadata"]["uid"]
    paths = manager.prepare(pod)
    assert paths["cache"] == tmp_path / "shm" / f"procorch-{uid}" / "cache"
    (paths["cache"] / "f").write_text("x")
    manager.cleanup(uid)
    assert not (tmp_path / "shm" / f"procorch-{uid}").exists()


def test_memory_empty_dir_falls_back_to_disk_without_shm(tmp_path: Path, objects: Objects) -> None:
    manager = VolumeManager(tmp_path / "data", objects, shm=None)
    paths = manager.prepare(make_pod([{"name": "cache", "emptyDir": {"medium": "Memory"}}]))
    assert paths["cache"].parent.name == "kubernetes.io~empty-dir"


def test_host_path_type_checks(manager: VolumeManager, tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    created_dir = tmp_path / "made/deep"
    created_file = tmp_path / "new.txt"

    def host(path: Path, kind: str) -> dict[str, Any]:
        return {"name": "h", "hostPath": {"path": str(path), "type": kind}}

    assert manager.prepare(make_pod([host(created_dir, "DirectoryOrCreate")]))["h"] == created_dir
    assert created_dir.is_dir()
    assert manager.prepare(make_pod([host(created_file, "FileOrCreate")]))["h"] == created_file
    assert created_file.is_file()
    assert manager.prepare(make_pod([host(a_file, "File")]))["h"] == a_file
    assert manager.prepare(make_pod([host(tmp_path / "nope", "")]))["h"] == tmp_path / "nope"

    failures = [
        (host(tmp_path / "missing", "Directory"), "is not a directory"),
        (host(a_file, "Directory"), "is not a directory"),
        (host(a_file, "DirectoryOrCreate"), "is not a directory"),
        (host(tmp_path, "File"), "is not a file"),
        (host(tmp_path, "FileOrCreate"), "is not a file"),
        (host(a_file, "Socket"), "is not a socket file"),
        (host(a_file, "CharDevice"), "is not a character device"),
        (host(a_file, "BlockDevice"), "is not a block device"),
    ]
    for volume, what in failures:
        with pytest.raises(VolumeError) as caught:
            manager.prepare(make_pod([volume]))
        path = volume["hostPath"]["path"]
        assert str(caught.value) == f"hostPath type check failed: {path} {what}"
        assert caught.value.volume == "h"
    with pytest.raises(ConfigError, match="^Weird is an invalid volume type$"):
        manager.prepare(make_pod([host(a_file, "Weird")]))


def test_host_path_socket_and_char_device_pass(manager: VolumeManager, tmp_path: Path) -> None:
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        pod = make_pod([{"name": "s", "hostPath": {"path": str(sock_path), "type": "Socket"}}])
        assert manager.prepare(pod)["s"] == sock_path
    pod = make_pod([{"name": "n", "hostPath": {"path": "/dev/null", "type": "CharDevice"}}])
    assert manager.prepare(pod)["n"] == Path("/dev/null")


# --- configMap and secret -----------------------------------------------------------------------


def test_config_map_keys_become_files_with_default_mode(
    manager: VolumeManager, objects: Objects
) -> None:
    objects.config_maps[("default", "cfg")] = {
        "data": {"app.conf": "level=debug\n", "other": "x"},
        "binaryData": {"blob": b64(b"\x00\xff")},
    }
    path = manager.prepare(make_pod([{"name": "c", "configMap": {"name": "cfg"}}]))["c"]
    assert path.parent.name == "kubernetes.io~configmap"
    assert (path / "app.conf").read_text() == "level=debug\n"
    assert (path / "blob").read_bytes() == b"\x00\xff"
    assert mode_of(path / "app.conf") == 0o644
    # The kubelet's layout: key -> ..data/key, ..data -> ..<timestamp>.
    assert os.readlink(path / "app.conf") == "..data/app.conf"
    data_target = os.readlink(path / "..data")
    assert data_target.startswith("..20") and (path / data_target).is_dir()
    assert sorted(os.listdir(path)) == sorted(["..data", data_target, "app.conf", "other", "blob"])


def test_config_map_items_paths_and_modes(manager: VolumeManager, objects: Objects) -> None:
    objects.config_maps[("default", "cfg")] = {"data": {"a": "A", "b": "B", "c": "C"}}
    volume = {
        "name": "c",
        "configMap": {
            "name": "cfg",
            "defaultMode": 0o600,
            "items": [{"key": "a", "path": "conf/a.txt"}, {"key": "b", "path": "b", "mode": 0o755}],
        },
    }
    path = manager.prepare(make_pod([volume]))["c"]
    assert (path / "conf/a.txt").read_text() == "A"
    assert mode_of(path / "conf/a.txt") == 0o600
    assert mode_of(path / "b") == 0o755
    assert not (path / "c").exists()
    assert os.readlink(path / "conf") == "..data/conf"


def test_config_map_missing_object_or_item_key(manager: VolumeManager, objects: Objects) -> None:
    with pytest.raises(VolumeError, match='^configmap "cfg" not found$'):
        manager.prepare(make_pod([{"name": "c", "configMap": {"name": "cfg"}}]))
    objects.config_maps[("default", "cfg")] = {"data": {"a": "A"}}
    items = [{"key": "zz", "path": "zz"}]
    with pytest.raises(ConfigError, match="^configmap references non-existent config key: zz$"):
        manager.prepare(make_pod([{"name": "c", "configMap": {"name": "cfg", "items": items}}]))
    optional = {"name": "c", "configMap": {"name": "cfg", "items": items, "optional": True}}
    path = manager.prepare(make_pod([optional]))["c"]
    assert os.listdir(path / "..data") == []


def test_optional_missing_config_map_gives_an_empty_volume(manager: VolumeManager) -> None:
    volume = {"name": "c", "configMap": {"name": "gone", "optional": True}}
    path = manager.prepare(make_pod([volume]))["c"]
    assert sorted(p for p in os.listdir(path) if not p.startswith("..")) == []


def test_secret_files_are_decoded_with_modes(manager: VolumeManager, objects: Objects) -> None:
    objects.secrets[("default", "db")] = {
        "data": {"password": b64("hunter2"), "key.pem": b64(b"\x01\x02")}
    }
    path = manager.prepare(make_pod([{"name": "s", "secret": {"secretName": "db"}}]))["s"]
    assert path.parent.name == "kubernetes.io~secret"
    assert (path / "password").read_text() == "hunter2"
    assert (path / "key.pem").read_bytes() == b"\x01\x02"
    assert mode_of(path / "password") == 0o644

    pod = make_pod(
        [
            {
                "name": "s",
                "secret": {
                    "secretName": "db",
                    "defaultMode": 0o400,
                    "items": [{"key": "password", "path": "pw"}],
                },
            }
        ]
    )
    path = manager.prepare(pod)["s"]
    assert (path / "pw").read_text() == "hunter2"
    assert mode_of(path / "pw") == 0o400
    with pytest.raises(VolumeError, match='^secret "nope" not found$'):
        manager.prepare(make_pod([{"name": "s", "secret": {"secretName": "nope"}}]))


# --- atomic updates -----------------------------------------------------------------------------


def test_prepare_again_reprojects_only_what_changed(
    manager: VolumeManager, objects: Objects
) -> None:
    objects.config_maps[("default", "cfg")] = {"data": {"a": "1", "old": "x"}}
    pod = make_pod([{"name": "c", "configMap": {"name": "cfg"}}, {"name": "e", "emptyDir": {}}])
    paths = manager.prepare(pod)
    (paths["e"] / "keep").write_text("mine")
    first = os.readlink(paths["c"] / "..data")

    manager.prepare(pod)
    assert os.readlink(paths["c"] / "..data") == first  # same content: nothing rewritten

    objects.config_maps[("default", "cfg")] = {"data": {"a": "2", "new": "y"}}
    manager.prepare(pod)
    second = os.readlink(paths["c"] / "..data")
    assert second != first
    assert (paths["c"] / "a").read_text() == "2"
    assert (paths["c"] / "new").read_text() == "y"
    assert not os.path.lexists(paths["c"] / "old")
    assert (paths["e"] / "keep").read_text() == "mine"
    objects.config_maps[("default", "cfg")] = {"data": {"a": "3"}}
    manager.prepare(pod)
    assert not (paths["c"] / first).exists()
    assert (paths["c"] / second).exists()  # the previous version, until the next update


def test_a_mode_change_alone_rewrites(tmp_path: Path) -> None:
    write_atomic(tmp_path, {"k": (b"v", 0o644)})
    assert write_atomic(tmp_path, {"k": (b"v", 0o644)}) is False
    assert write_atomic(tmp_path, {"k": (b"v", 0o600)}) is True
    assert mode_of(tmp_path / "k") == 0o600


def test_atomic_writer_refuses_paths_outside_the_volume(tmp_path: Path) -> None:
    for bad in ("/etc/passwd", "../x", "a/../../x", "..hidden"):
        with pytest.raises(ConfigError, match="invalid path"):
            write_atomic(tmp_path, {bad: (b"", 0o644)})


def test_readers_never_see_partial_content_during_updates(tmp_path: Path) -> None:
    versions = [(f"version-{i}-" * 2000).encode() for i in range(200)]
    allowed = set(versions)
    write_atomic(tmp_path, {"key": (versions[0], 0o644)})
    stop = threading.Event()
    seen: list[bytes] = []
    bad: list[bytes] = []
    errors: list[OSError] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                data = (tmp_path / "key").read_bytes()
            except OSError as exc:
                errors.append(exc)
                continue
            seen.append(data)
            if data not in allowed:
                bad.append(data)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in versions[1:]:
            write_atomic(tmp_path, {"key": (version, 0o644)})
            # Updates come from API writes, not back to back: a reader is only guaranteed
            # its file across one swap (the previous version is kept until the next), and
            # on a loaded machine one open() can outlast two back-to-back swaps (seen once
            # in CI: ENOENT).
            time.sleep(0.002)
    finally:
        stop.set()
        thread.join()
    assert not bad, f"{len(bad)} partial reads, e.g. {bad[0][:40]!r}"
    assert not errors, f"{len(errors)} failed reads, e.g. {errors[0]!r}"
    assert len(seen) > 100
    assert len(set(seen)) > 1
    assert (tmp_path / "key").read_bytes() == versions[-1]
    # The current version and the previous one (kept until the next update).
    hidden = [p for p in os.listdir(tmp_path) if p.startswith("..") and p != "..data"]
    assert os.readlink(tmp_path / "..data") in hidden
    assert len(hidden) == 2


# --- downwardAPI and projected ------------------------------------------------------------------


def test_downward_api_files_render_like_the_kubelet(manager: VolumeManager) -> None:
    volume = {
        "name": "info",
        "downwardAPI": {
            "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}, "mode": 0o600},
                {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
                {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                {
                    "path": "cpu",
                    "resourceFieldRef": {
                        "containerName": "app",
                        "resource": "limits.cpu",
                        "divisor": "1m",
                    },
                },
            ]
        },
    }
    pod = make_pod([volume])
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m"}}
    path = manager.prepare(pod)["info"]
    assert path.parent.name == "kubernetes.io~downward-api"
    assert (path / "labels").read_text() == 'app="web"\ntier="front"'
    assert (path / "annotations").read_text() == 'build="42"'
    assert (path / "name").read_text() == "web-1"
    assert (path / "ns").read_text() == "default"
    assert mode_of(path / "ns") == 0o600
    assert (path / "uid").read_text() == pod["metadata"]["uid"]
    assert (path / "app").read_text() == "web"
    assert (path / "cpu").read_text() == "500"

    pod["metadata"]["labels"]["tier"] = "back"
    manager.prepare(pod)
    assert (path / "labels").read_text() == 'app="web"\ntier="back"'


def test_projected_volume_merges_sources(
    manager: VolumeManager, objects: Objects, tokens: IssuedTokens
) -> None:
    objects.config_maps[("default", "cfg")] = {"data": {"a": "A"}}
    objects.secrets[("default", "db")] = {"data": {"pw": b64("x")}}
    volume = {
        "name": "all",
        "projected": {
            "defaultMode": 0o640,
            "sources": [
                {"configMap": {"name": "cfg"}},
                {"secret": {"name": "db", "items": [{"key": "pw", "path": "secret/pw"}]}},
                {
                    "downwardAPI": {
                        "items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]
                    }
                },
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            ],
        },
    }
    pod = make_pod([volume])
    # No token fetched yet: the volume cannot be set up (the pod waits, with an event).
    with pytest.raises(VolumeError, match="failed to fetch token"):
        manager.prepare(pod)
    tokens.issued[(pod["metadata"]["uid"], "", 3600)] = "the-token"
    path = manager.prepare(pod)["all"]
    assert path.parent.name == "kubernetes.io~projected"
    assert (path / "a").read_text() == "A"
    assert (path / "secret/pw").read_text() == "x"
    assert (path / "name").read_text() == "web-1"
    assert (path / "token").read_text() == "the-token"
    assert mode_of(path / "a") == 0o640
    assert mode_of(path / "token") == 0o640


# --- PVCs ---------------------------------------------------------------------------------------


def test_pvc_directory_outlives_the_pod(
    manager: VolumeManager, objects: Objects, tmp_path: Path
) -> None:
    pod = make_pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    with pytest.raises(VolumeError, match='^persistentvolumeclaim "data" not found$'):
        manager.prepare(pod)
    objects.pvcs[("default", "data")] = {"metadata": {"name": "data", "uid": "abc"}}
    path = manager.prepare(pod)["d"]
    assert path == tmp_path / "data/pvc/default/data-abc"
    (path / "db.sqlite").write_text("rows")
    manager.cleanup(pod["metadata"]["uid"])
    assert manager.pod_dirs() == set()
    again = manager.prepare(
        make_pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    )
    assert (again["d"] / "db.sqlite").read_text() == "rows"


# --- mounts -------------------------------------------------------------------------------------


def test_mounts_read_only_sub_path_and_sub_path_expr(
    manager: VolumeManager, objects: Objects
) -> None:
    objects.config_maps[("default", "cfg")] = {"data": {"app.conf": "x"}}
    objects.pvcs[("default", "data")] = {"metadata": {"uid": "u1"}}
    pod = make_pod(
        [
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "ro-claim", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}},
        ]
    )
    container = {
        "name": "app",
        "volumeMounts": [
            {"name": "scratch", "mountPath": "/tmp/work"},
            {"name": "scratch", "mountPath": "/cache", "subPath": "cache/a", "readOnly": True},
            {"name": "scratch", "mountPath": "/logs", "subPathExpr": "logs/$(POD_NAME)"},
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
            {"name": "ro-claim", "mountPath": "/data"},
        ],
    }
    paths = manager.prepare(pod)
    mounts = manager.mounts(pod, container, paths, env={"POD_NAME": "web-1"})
    scratch, cfg = paths["scratch"], paths["cfg"]
    assert mounts == [
        Mount(source=str(scratch), target="/tmp/work", read_only=False),
        Mount(source=str(scratch / "cache/a"), target="/cache", read_only=True),
        Mount(source=str(scratch / "logs/web-1"), target="/logs", read_only=False),
        Mount(source=str(cfg), target="/etc/app", read_only=True),
        Mount(source=str(cfg / "app.conf"), target="/etc/app.conf", read_only=True),
        Mount(source=str(paths["ro-claim"]), target="/data", read_only=True),
    ]
    assert (scratch / "cache/a").is_dir()
    assert (scratch / "logs/web-1").is_dir()
    assert (cfg / "app.conf").read_text() == "x"


def test_sub_path_refusals(manager: VolumeManager, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pod = make_pod([{"name": "v", "emptyDir": {}}])
    paths = manager.prepare(pod)
    os.symlink(outside, paths["v"] / "escape")

    def mount(**fields: str) -> list[Mount]:
        container = {"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/m", **fields}]}
        return manager.mounts(pod, container, paths, env={"EMPTY": ""})

    with pytest.raises(
        ConfigError, match=r"^unable to provision SubPath `a/\.\./b`: must not contain '\.\.'$"
    ):
        mount(subPath="a/../b")
    with pytest.raises(ConfigError, match="^error SubPath `/etc` must not be an absolute path$"):
        mount(subPath="/etc")
    with pytest.raises(ConfigError, match="not within volume path"):
        mount(subPath="escape")
    with pytest.raises(ConfigError, match="^missing value for EMPTY, UNSET$"):
        mount(subPathExpr="$(UNSET)/$(EMPTY)")
    with pytest.raises(
        ConfigError, match='^cannot find volume "other" to mount into container "app"$'
    ):
        manager.mounts(
            pod, {"name": "app", "volumeMounts": [{"name": "other", "mountPath": "/o"}]}, paths
        )


# --- cleanup ------------------------------------------------------------------------------------


def test_cleanup_removes_read_only_trees_and_partial_state(
    manager: VolumeManager, objects: Objects, tmp_path: Path
) -> None:
    objects.secrets[("default", "db")] = {"data": {"pw": b64("x")}}
    pod = make_pod(
        [
            {"name": "e", "emptyDir": {}},
            {"name": "s", "secret": {"secretName": "db", "defaultMode": 0o400}},
        ]
    )
    uid = pod["metadata"]["uid"]
    paths = manager.prepare(pod)
    locked = paths["e"] / "locked"
    locked.mkdir()
    (locked / "ro.txt").write_text("x")
    os.chmod(locked / "ro.txt", 0o400)
    os.chmod(locked, 0o500)
    os.chmod(paths["e"], 0o500)
    manager.cleanup(uid)
    assert not (tmp_path / "data/pods" / uid).exists()
    manager.cleanup(uid)  # nothing left: still fine

    partial = tmp_path / "data/pods/half-made/volumes"
    partial.mkdir(parents=True)
    assert manager.pod_dirs() == {"half-made"}
    manager.cleanup("half-made")
    assert manager.pod_dirs() == set()
    with pytest.raises(ValueError):
        manager.cleanup("../escape")
