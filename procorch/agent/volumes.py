"""Pod volumes on the node's disk, laid out and updated the way the kubelet does it.

Owns everything under ``<root>/pods/<uid>/volumes/<plugin>/<name>`` (``kubernetes.io~empty-dir``,
``~configmap``, ``~secret``, ``~downward-api``, ``~projected``, as in /var/lib/kubelet) and the
PersistentVolumeClaim directories ``<root>/pvc/<namespace>/<claim>-<claim uid>``, which outlive
their pods (as k3s's local-path provisioner does) and are never removed here.

* ``emptyDir`` is a directory (mode 0777, as the kubelet makes it). ``medium: Memory`` puts it in
  ``<shm>/procorch-<uid>/<name>`` (``/dev/shm`` when it exists, a tmpfs on Linux), and on disk
  with the others when there is no shm directory; ``sizeLimit`` is not enforced.
* ``hostPath`` is the path itself, after the kubelet's ``type`` checks.
* ``configMap``, ``secret``, ``downwardAPI`` and ``projected`` are written by :func:`write_atomic`
  (kubelet's AtomicWriter): files in a hidden timestamped directory, a ``..data`` symlink to it
  swapped by an atomic rename, and per-key links ``key -> ..data/key``, so a reader never sees a
  partial file; the previous version is removed at the next update, not at once. Secrets are written to disk, not tmpfs (procorch runs as one user on one
  machine). A projected ``serviceAccountToken`` is the pod's token as the agent fetched it
  (:mod:`procorch.agent.tokens`); a ``clusterTrustBundle`` source is skipped.

Concurrency: synchronous file-system work; call it from a worker thread
(``asyncio.to_thread``). The caller serializes calls for one pod (one worker per pod); calls for
different pods may run in parallel.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from procorch.agent.podenv import (
    EMPTY,
    ConfigError,
    Lookups,
    decode_secret_value,
    expand_with,
    field_value,
    resource_value,
)
from procorch.agent.runtime.spec import Mount
from procorch.kit.logging import get_logger

log = get_logger("agent.volumes")

DEFAULT_MODE = 0o644
TOKEN_MODE = 0o600  # a token file is its owner's alone unless defaultMode says otherwise
DEFAULT_TOKEN_SECONDS = 3607
DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
DEFAULT_SHM: Path | None = Path("/dev/shm") if Path("/dev/shm").is_dir() else None

_PLUGINS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
# Kubernetes mounts these read-only whatever the volumeMount says.
_READ_ONLY_SOURCES = ("configMap", "secret", "downwardAPI", "projected")

Payload = dict[str, tuple[bytes, int]]
"""Relative path -> (content, mode)."""


class VolumeError(ConfigError):
    """A volume cannot be set up (the kubelet's FailedMount); ``volume`` names it."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume


# --- atomic projection -------------------------------------------------------------------------


def _validate_payload_path(path: str) -> None:
    """AtomicWriter's rules: relative, no ``..`` element, not starting with ``..``."""
    items = path.split("/")
    if not path or os.path.isabs(path) or len(path) > 4096:
        problem = "must be a relative path of at most 4096 characters"
    elif ".." in items:
        problem = "must not contain '..'"
    elif any(len(item) > 255 for item in items):
        problem = "filenames must be less than or equal to 255 characters"
    elif items[0].startswith("..") and len(items[0]) > 2:
        problem = "must not start with '..'"
    else:
        return
    raise ConfigError(f"invalid path: {problem}: {path}")


def _stale_paths(payload: Payload, old_dir: Path) -> set[str]:
    """Paths of the current version that the new payload no longer has."""
    current: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(old_dir):
        rel = os.path.relpath(dirpath, old_dir)
        for name in dirnames + filenames:
            current.add(name if rel == "." else f"{rel}/{name}")
    wanted: set[str] = set()
    for path in payload:
        while path:
            wanted.add(path)
            path = os.path.dirname(path)
    return current - wanted


def _differs(payload: Payload, old_dir: Path) -> bool:
    for path, (content, mode) in payload.items():
        full = old_dir / path
        try:
            st = os.lstat(full)
            if stat.S_IMODE(st.st_mode) != mode & 0o7777 or full.read_bytes() != content:
                return True
        except OSError:
            return True
    return False


def _new_timestamped_dir(target: Path) -> Path:
    prefix = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    while True:
        candidate = target / f"{prefix}{secrets.randbelow(2**32)}"
        try:
            os.mkdir(candidate, 0o700)
        except FileExistsError:
            continue
        # 0755 whatever the umask, so that any user can walk into it.
        os.chmod(candidate, 0o755)
        return candidate


def write_atomic(target: Path, payload: Mapping[str, tuple[bytes, int]]) -> bool:
    """Project ``payload`` into the existing directory ``target`` atomically.

    Returns whether anything was written: nothing is when every file already has the same
    content and mode and no file is to be removed.
    """
    clean: Payload = {}
    for path, projection in payload.items():
        _validate_payload_path(path)
        clean[os.path.normpath(path)] = projection
    data_link = target / DATA_DIR
    try:
        old = os.readlink(data_link)
    except FileNotFoundError:
        old = ""
    stale: set[str] = set()
    if old:
        stale = _stale_paths(clean, target / old)
        if not stale and not _differs(clean, target / old):
            return False
    ts_dir = _new_timestamped_dir(target)
    try:
        for path, (content, mode) in clean.items():
            full = ts_dir / path
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(content)
            # Exactly the mode asked for, whatever the umask.
            os.chmod(full, mode & 0o7777)
        tmp_link = target / NEW_DATA_DIR
        with suppress(FileNotFoundError):
            os.unlink(tmp_link)  # left by an interrupted write
        os.symlink(ts_dir.name, tmp_link)
        os.replace(tmp_link, data_link)  # the atomic switch to the new version
    except BaseException:
        shutil.rmtree(ts_dir, ignore_errors=True)
        raise
    for path in clean:
        top = path.split("/", 1)[0]
        if not os.path.lexists(target / top):
            os.symlink(f"{DATA_DIR}/{top}", target / top)
    for path in stale:
        if "/" not in path:
            with suppress(FileNotFoundError):
                os.unlink(target / path)
    # Older versions and any left by an interrupted write. The previous one stays until the
    # next update: a reader that resolved ..data just before the swap still finds its file
    # (the kubelet removes it at once, and such a reader gets ENOENT).
    for entry in os.scandir(target):
        if (
            entry.name.startswith("..")
            and entry.name not in (DATA_DIR, NEW_DATA_DIR, ts_dir.name, old)
            and entry.is_dir(follow_symlinks=False)
        ):
            shutil.rmtree(entry.path, ignore_errors=True)
    return True


# --- payloads ----------------------------------------------------------------------------------


def _mode(value: Any, default: int) -> int:
    return int(value) if value is not None else default


class TokenSource(Protocol):
    """The ServiceAccount tokens fetched for pods (:class:`procorch.agent.tokens.Tokens`)."""

    def token(self, pod_uid: str, audience: str, seconds: int) -> str | None: ...


class VolumeManager:
    """Sets up, refreshes and removes the volumes of the pods on this node."""

    def __init__(
        self,
        root: Path,
        lookups: Lookups,
        *,
        node_allocatable: Mapping[str, str] = EMPTY,
        shm: Path | None = DEFAULT_SHM,
        tokens: TokenSource | None = None,
    ) -> None:
        self.root = Path(root)
        self.lookups = lookups
        self.tokens = tokens
        self.node_allocatable = node_allocatable
        self.shm = shm

    # --- layout ---

    def pod_dir(self, uid: str) -> Path:
        if not uid or "/" in uid or uid in (".", ".."):
            raise ValueError(f"invalid pod uid {uid!r}")
        return self.root / "pods" / uid

    def _shm_dir(self, uid: str) -> Path | None:
        return self.shm / f"procorch-{uid}" if self.shm is not None else None

    def pod_dirs(self) -> set[str]:
        """The uids of the pods that have a directory here (for garbage collection)."""
        try:
            return {entry.name for entry in os.scandir(self.root / "pods") if entry.is_dir()}
        except FileNotFoundError:
            return set()

    # --- set-up ---

    def prepare(self, pod: dict[str, Any]) -> dict[str, Path]:
        """Make every volume of ``pod`` ready; returns volume name -> host path.

        Idempotent: a second call re-projects configMap, secret, downwardAPI and projected
        volumes whose content changed and leaves the rest. On an error the volumes already
        there are left as they are (a running container keeps its last good files).
        """
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        base = self.pod_dir(uid)
        (base / "volumes").mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = str(volume.get("name") or "")
            try:
                paths[name] = self._prepare_one(pod, volume, name=name, base=base)
            except VolumeError:
                raise
            except ConfigError as exc:
                raise VolumeError(name, str(exc)) from exc
            except OSError as exc:
                raise VolumeError(name, f"volume {name!r}: {exc}") from exc
        return paths

    def _prepare_one(
        self, pod: dict[str, Any], volume: dict[str, Any], *, name: str, base: Path
    ) -> Path:
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        kind = next((k for k in volume if k != "name" and volume[k] is not None), "")
        source = volume.get(kind) or {}
        if kind == "hostPath":
            return _check_host_path(Path(str(source.get("path") or "")), source.get("type") or "")
        if kind == "persistentVolumeClaim":
            return self._claim_dir(namespace, str(source.get("claimName") or ""))
        if kind == "emptyDir" and source.get("medium") == "Memory":
            shm = self._shm_dir(str((pod.get("metadata") or {}).get("uid")))
            if shm is not None:
                return _make_dir(shm / name, 0o777)
        if kind not in _PLUGINS:
            raise ConfigError(f'volume "{name}": {kind or "this"} volumes are not supported')
        path = base / "volumes" / _PLUGINS[kind] / name
        if kind == "emptyDir":
            return _make_dir(path, 0o777)
        path.mkdir(parents=True, exist_ok=True)
        if kind in ("configMap", "secret"):
            named = {**source, "name": source.get("name") or source.get("secretName")}
            payload = self._keys_payload(kind, namespace, named, source.get("defaultMode"))
        elif kind == "downwardAPI":
            payload = self._downward_payload(pod, source, source.get("defaultMode"))
        else:
            payload = self._projected_payload(pod, source)
        if write_atomic(path, payload):
            log.debug("projected volume written", volume=name, pod_uid=base.name)
        return path

    def _keys_payload(
        self, kind: str, namespace: str, source: dict[str, Any], mode: Any
    ) -> Payload:
        """A configMap's or secret's keys as files (MakePayload), per ``items`` when given."""
        name = str(source.get("name") or "")
        optional = bool(source.get("optional"))
        if kind == "configMap":
            found = self.lookups.config_map(namespace, name)
            what, missing_key = "configmap", "configmap references non-existent config key"
        else:
            found = self.lookups.secret(namespace, name)
            what, missing_key = "secret", "secret references non-existent secret key"
        if found is None and not optional:
            raise ConfigError(f'{what} "{name}" not found')
        found = found or {}
        if kind == "configMap":
            data = {str(k): str(v).encode() for k, v in (found.get("data") or {}).items()}
            binary = found.get("binaryData") or {}
        else:
            data, binary = {}, found.get("data") or {}
        data.update({str(k): decode_secret_value(v) for k, v in binary.items()})
        default = _mode(mode, DEFAULT_MODE)
        items = list(source.get("items") or [])
        if not items:
            return {key: (value, default) for key, value in data.items()}
        payload: Payload = {}
        for item in items:
            key = str(item.get("key") or "")
            if key in data:
                item_mode = _mode(item.get("mode"), default)
                payload[str(item.get("path") or key)] = (data[key], item_mode)
            elif not optional:
                raise ConfigError(f"{missing_key}: {key}")
        return payload

    def _downward_payload(self, pod: dict[str, Any], source: dict[str, Any], mode: Any) -> Payload:
        status = pod.get("status") or {}
        payload: Payload = {}
        for item in source.get("items") or []:
            value = ""
            if item.get("fieldRef"):
                ref = item["fieldRef"]
                value = field_value(
                    pod,
                    str(ref.get("fieldPath") or ""),
                    api_version=str(ref.get("apiVersion") or "v1"),
                    pod_ip=str(status.get("podIP") or ""),
                    host_ip=str(status.get("hostIP") or ""),
                )
            elif item.get("resourceFieldRef"):
                ref = item["resourceFieldRef"]
                allocatable = self.node_allocatable
                value = resource_value(ref, pod=pod, container=None, node_allocatable=allocatable)
            default = _mode(mode, DEFAULT_MODE)
            payload[str(item.get("path"))] = (value.encode(), _mode(item.get("mode"), default))
        return payload

    def _projected_payload(self, pod: dict[str, Any], source: dict[str, Any]) -> Payload:
        namespace = str((pod.get("metadata") or {}).get("namespace") or "")
        mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
        payload: Payload = {}
        for projection in source.get("sources") or []:
            kind = next((k for k in ("configMap", "secret") if projection.get(k) is not None), "")
            if kind:
                payload.update(self._keys_payload(kind, namespace, projection[kind], mode))
            elif projection.get("downwardAPI") is not None:
                payload.update(self._downward_payload(pod, projection["downwardAPI"], mode))
            elif projection.get("serviceAccountToken") is not None:
                source_token = projection["serviceAccountToken"]
                token = self._token(pod, source_token)
                payload[str(source_token.get("path") or "token")] = (
                    token.encode(),
                    _mode(source.get("defaultMode"), TOKEN_MODE),
                )
            else:
                # clusterTrustBundle: not served by procorch.
                log.debug("skipped projected volume source", source=sorted(projection))
        return payload

    def _token(self, pod: dict[str, Any], source: dict[str, Any]) -> str:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        seconds = int(source.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
        token = None
        if self.tokens is not None:
            token = self.tokens.token(uid, str(source.get("audience") or ""), seconds)
        if token is None:
            raise ConfigError("failed to fetch token: no token issued for this pod yet")
        return token

    def _claim_dir(self, namespace: str, claim: str) -> Path:
        pvc = self.lookups.pvc(namespace, claim)
        if pvc is None:
            raise ConfigError(f'persistentvolumeclaim "{claim}" not found')
        pvc_uid = str((pvc.get("metadata") or {}).get("uid") or "")
        path = self.root / "pvc" / namespace / (f"{claim}-{pvc_uid}" if pvc_uid else claim)
        if path.is_dir():
            return path
        return _make_dir(path, 0o777)

    # --- what a container sees ---

    def mounts(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        paths: Mapping[str, Path],
        *,
        env: Mapping[str, str] = EMPTY,
    ) -> list[Mount]:
        """The container's ``volumeMounts`` as host paths (kubelet's makeMounts).

        ``subPath`` (or ``subPathExpr``, expanded against ``env``, the container's environment)
        selects a path inside the volume, created as a directory when missing; it may not be
        absolute, contain ``..`` or lead outside the volume through a symlink.
        """
        volumes = {str(v.get("name")): v for v in (pod.get("spec") or {}).get("volumes") or []}
        result: list[Mount] = []
        for vm in container.get("volumeMounts") or []:
            name = str(vm.get("name") or "")
            if name not in paths or name not in volumes:
                raise ConfigError(
                    f'cannot find volume "{name}" to mount into container "{container.get("name")}"'
                )
            host = Path(paths[name])
            sub = str(vm.get("subPath") or "")
            if vm.get("subPathExpr"):
                sub = _expand_sub_path(str(vm["subPathExpr"]), env)
            source = host
            if sub:
                source = _sub_path(host, sub)
            volume = volumes[name]
            read_only = (
                bool(vm.get("readOnly"))
                or any(volume.get(kind) is not None for kind in _READ_ONLY_SOURCES)
                or bool((volume.get("persistentVolumeClaim") or {}).get("readOnly"))
            )
            result.append(
                Mount(source=str(source), target=str(vm.get("mountPath")), read_only=read_only)
            )
        return result

    # --- removal ---

    def cleanup(self, uid: str) -> None:
        """Remove everything of pod ``uid`` (never PVC data); robust to partial state and to
        read-only files. Refuses to descend into anything still mounted."""
        _remove_tree(self.pod_dir(uid))
        shm = self._shm_dir(uid)
        if shm is not None:
            _remove_tree(shm)


# --- helpers -----------------------------------------------------------------------------------


def _make_dir(path: Path, mode: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != mode:
        os.chmod(path, mode)  # whatever the umask
    return path


_HOST_PATH_TYPES = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "FileOrCreate": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def _check_host_path(path: Path, kind: str) -> Path:
    """The kubelet's hostPath ``type`` checks (pkg/volume/hostpath); no type, no check."""
    if not kind:
        return path
    if kind not in _HOST_PATH_TYPES:
        raise ConfigError(f"{kind} is an invalid volume type")
    if kind == "DirectoryOrCreate" and not path.exists():
        path.mkdir(mode=0o755, parents=True)
    elif kind == "FileOrCreate" and not path.exists():
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))  # the parent must exist
        except OSError as exc:
            raise ConfigError(f"open {path}: {str(exc.strerror).lower()}") from exc
    test, what = _HOST_PATH_TYPES[kind]
    try:
        ok = test(os.stat(path).st_mode)
    except OSError:
        ok = False
    if not ok:
        raise ConfigError(f"hostPath type check failed: {path} is not {what}")
    return path


def _expand_sub_path(expr: str, env: Mapping[str, str]) -> str:
    """subPathExpr: every variable it names must be set and not empty."""
    missing: set[str] = set()

    def lookup(name: str) -> str:
        if not env.get(name):
            missing.add(name)
        return env.get(name, "")

    expanded = expand_with(expr, lookup)
    if missing:
        raise ConfigError(f"missing value for {', '.join(sorted(missing))}")
    return expanded


def _sub_path(volume: Path, sub: str) -> Path:
    if os.path.isabs(sub):
        raise ConfigError(f"error SubPath `{sub}` must not be an absolute path")
    if ".." in sub.split("/"):
        raise ConfigError(f"unable to provision SubPath `{sub}`: must not contain '..'")
    source = volume / sub
    real_volume = os.path.realpath(volume).rstrip("/")
    # realpath resolves the part that exists, so this also holds before the path is made:
    # a symlink in the volume can never make us create or mount something outside it.
    real = os.path.realpath(source)
    if real != real_volume and not real.startswith(real_volume + "/"):
        raise ConfigError(f"subpath {str(source)!r} not within volume path {real_volume!r}")
    if not os.path.lexists(source):
        # Made now with the volume's mode, so that it is not made later with another.
        os.makedirs(source, mode=stat.S_IMODE(os.stat(volume).st_mode), exist_ok=True)
    return source


def _remove_tree(path: Path) -> None:
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    # Make every directory writable and listable first: a read-only file can be unlinked
    # from a writable directory, and nothing can be removed from a read-only one.
    with suppress(OSError):
        os.chmod(path, 0o700)
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            sub = os.path.join(dirpath, name)
            if os.path.islink(sub):
                continue
            if os.path.ismount(sub):
                raise OSError(errno.EBUSY, "still mounted, not removed", sub)
            with suppress(OSError):
                os.chmod(sub, 0o700)
    shutil.rmtree(path)
