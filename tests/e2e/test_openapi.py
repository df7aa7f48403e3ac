"""docs/openapi.yaml and the router agree: every route the binary serves is in
the spec, on the right port, and every operation of the spec is served."""
import subprocess
from pathlib import Path

import yaml

from conftest import BIN, ROOT

METHODS = {"get", "post", "put", "delete", "patch", "head", "options"}


def spec_routes():
    spec = yaml.safe_load(Path(ROOT, "docs", "openapi.yaml").read_text())
    default_ports = {s["url"].rsplit(":", 1)[1] for s in spec["servers"]}
    routes = set()
    for path, item in spec["paths"].items():
        ports = {s["url"].rsplit(":", 1)[1] for s in item.get("servers", [])} or default_ports
        for method in item:
            if method in METHODS:
                for port in ports:
                    routes.add(({"9001": "ws", "9002": "api"}[port], method.upper(), path))
    return spec, routes


def binary_routes():
    out = subprocess.run([BIN, "routes"], capture_output=True, text=True, check=True).stdout
    return {tuple(line.split(" ", 2)) for line in out.splitlines() if line}


def test_router_and_spec_agree():
    _, documented = spec_routes()
    served = binary_routes()
    assert served - documented == set(), "served but not in docs/openapi.yaml"
    assert documented - served == set(), "in docs/openapi.yaml but not served"


def test_spec_is_openapi_3_1_with_resolvable_refs():
    spec, _ = spec_routes()
    assert spec["openapi"].startswith("3.1")
    text = Path(ROOT, "docs", "openapi.yaml").read_text()
    import re
    for ref in set(re.findall(r'"#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in spec["components"][ref[0]], ref
