"""Procfile and .env as Kubernetes objects (foreman's conventions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from procorch.launcher import procfile
from procorch.launcher.console import procfile_names


def write(tmp_path: Path, text: str, name: str = "Procfile") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_each_process_type_gets_foremans_port(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\nweb: python app.py\n\nworker_2: python worker.py --fast\n")
    processes = procfile.read_procfile(path)
    assert [(p.name, p.object_name, p.command, p.port) for p in processes] == [
        ("web", "web", "python app.py", 5000),
        ("worker_2", "worker-2", "python worker.py --fast", 5100),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web python app.py\n", "Procfile:1: expected 'name: command'"),
        ("web: a\nweb: b\n", "Procfile:2: process type 'web' appears twice"),
        ("# nothing\n", "no process types"),
    ],
)
def test_bad_procfiles_say_where(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(procfile.ProcfileError, match=message):
        procfile.read_procfile(write(tmp_path, text))


def test_env_files_later_ones_win(tmp_path: Path) -> None:
    first = write(tmp_path, "A=1\nB='two words'\n# c\nexport C=3\n", ".env")
    second = write(tmp_path, "A=override\n", "local.env")
    assert procfile.read_env([first, second]) == {"A": "override", "B": "two words", "C": "3"}
    with pytest.raises(procfile.ProcfileError, match="does not exist"):
        procfile.read_env([tmp_path / "missing.env"])


def test_formation(tmp_path: Path) -> None:
    processes = procfile.read_procfile(write(tmp_path, "web: a\nworker: b\n"))
    assert procfile.formation("", processes) == {"web": 1, "worker": 1}
    assert procfile.formation("web=2,worker=3", processes) == {"web": 2, "worker": 3}
    assert procfile.formation("all=0", processes) == {"web": 0, "worker": 0}
    with pytest.raises(procfile.ProcfileError, match="does not define"):
        procfile.formation("db=1", processes)


def test_objects_run_through_sh_in_the_project_directory(tmp_path: Path) -> None:
    processes = procfile.read_procfile(write(tmp_path, "web: python -m http.server $PORT\n"))
    objects = procfile.manifests(
        processes, workdir=tmp_path, env={"DEBUG": "1"}, replicas={"web": 2}
    )
    secret, deployment = objects
    assert secret["kind"] == "Secret" and secret["stringData"] == {"DEBUG": "1"}
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c", "python -m http.server $PORT"]
    assert container["workingDir"] == str(tmp_path)
    assert container["ports"] == [{"name": "http", "containerPort": 5000}]
    assert container["envFrom"] == [{"secretRef": {"name": "procfile-env"}}]


def test_output_is_named_like_foreman() -> None:
    name_of = procfile_names()
    assert name_of("default", "web-5d8f-aaaaa", "web", 1) == "web.1"
    assert name_of("default", "web-5d8f-bbbbb", "web", 1) == "web.2"
    assert name_of("default", "web-5d8f-aaaaa", "web", 1) == "web.1"
    assert name_of("default", "worker-77-ccccc", "worker", 1) == "worker.1"


def test_convert_writes_one_manifest_per_object(tmp_path: Path) -> None:
    write(tmp_path, "web: python -m http.server $PORT\nworker: sleep 1000\n")
    write(tmp_path, "TOKEN=abc\n", ".env")
    result = subprocess.run(
        [sys.executable, "-m", "procorch", "convert", "-m", "web=2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "keep it out of version control" in result.stderr
    written = sorted(p.name for p in (tmp_path / "manifests").iterdir())
    assert written == ["procfile-env-secret.yaml", "web-deployment.yaml", "worker-deployment.yaml"]
    web = yaml.safe_load((tmp_path / "manifests" / "web-deployment.yaml").read_text())
    assert web["spec"]["replicas"] == 2
