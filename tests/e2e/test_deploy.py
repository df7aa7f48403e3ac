"""deploy/: the compose file reproduces the prototype's layout with health
checks, and the Dockerfile's runtime stage installs exactly the Debian
packages of the libraries the built binary links. (Docker itself cannot run
here: no registry to pull debian:12-slim from; these checks are static.)"""
import os
import pathlib
import re
import subprocess

import pytest
import yaml

from conftest import BIN

ROOT = pathlib.Path(__file__).resolve().parents[2]


def compose():
    return yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())


def test_compose_has_the_prototype_layout_with_health_checks():
    services = compose()["services"]
    assert set(services) == {"mysql", "redis", "publisher", "notifier", "consumer"}
    for name in ("mysql", "redis"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("publisher", "notifier", "consumer"):
        s = services[name]
        assert s["command"][0] == name
        for dep in ("mysql", "redis"):
            assert s["depends_on"][dep]["condition"] == "service_healthy", (name, dep)
        env = s["environment"]
        assert env["HOUSTON_DB"].startswith("mysql://") and "@mysql:3306/" in env["HOUSTON_DB"]
        assert env["HOUSTON_REDIS"] == "redis://redis:6379"
    assert "9002:9002" in services["publisher"]["ports"]
    assert "9001:9001" in services["notifier"]["ports"]
    # the settings it passes are settings houston has
    names = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    for s in services.values():
        for word in s.get("command", []):
            if word.startswith("--") and word not in ("--appendonly", "--appendfsync",
                                                      "--connect", "--innodb_initialized"):
                assert word in names, word
        for var in s.get("environment", {}):
            if var.startswith("HOUSTON_") and var != "HOUSTON_HEALTH_PORT":
                assert var in names, var


def runtime_packages_of_binary():
    out = subprocess.run(["ldd", BIN], capture_output=True, text=True, check=True).stdout
    pkgs = set()
    for path in re.findall(r"=> (/\S+)", out):
        found = subprocess.run(["dpkg", "-S", "*/" + os.path.basename(path)],
                               capture_output=True, text=True).stdout
        if found:
            pkgs.add(found.split(":")[0])
    return pkgs - {"libc6", "libc6-i386", "zlib1g"}  # in every Debian image


def test_dockerfile_is_multi_stage_on_debian_slim_with_the_right_libraries():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages == ["debian:12-slim", "debian:12-slim"]
    runtime = text.split("FROM debian:12-slim", 2)[2]
    if os.environ.get("HOUSTON_SANITIZED"):
        pytest.skip("the sanitizer build links extra runtime libraries")
    wanted = runtime_packages_of_binary()
    assert wanted, "ldd found no libraries"
    for pkg in wanted:
        assert re.search(rf"\b{re.escape(pkg)}\b", runtime), f"{pkg} missing from the runtime stage"
    assert "USER houston" in runtime and "HEALTHCHECK" in runtime
