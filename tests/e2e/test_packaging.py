"""make install, the man page, the systemd unit and make deb, checked with the
tools a packager would use: groff/man, systemd-analyze, dpkg-deb, lintian."""
import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, ROOT

# The normal build when there is one (the sanitizer run packages that one
# too, rather than an instrumented binary); else the binary under test's.
BUILD = ROOT / "build" if (ROOT / "build" / "houston").exists() else Path(BIN).resolve().parent


def make(*args, timeout=600):
    """make in the repository, on the build directory the tests use, with
    the same -Werror setting it was configured with (so nothing rebuilds)."""
    cache = (BUILD / "CMakeCache.txt").read_text()
    werror = "ON" if re.search(r"^HOUSTON_WERROR:BOOL=ON$", cache, re.M) else "OFF"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "--no-print-directory", f"BUILD={BUILD}", f"WERROR={werror}",
                        "JOBS=1", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/install-deps.sh test installs it)")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    make("install", f"DESTDIR={dest}", "PREFIX=/usr/local")
    return dest / "usr" / "local"


def test_make_install_layout(installed):
    binary = installed / "bin" / "houston"
    assert os.access(binary, os.X_OK)
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    assert out.startswith("houston ")
    assert (installed / "share" / "man" / "man1" / "houston.1.gz").is_file()
    assert (installed / "lib" / "systemd" / "system" / "houston.service").is_file()
    for doc in ("README.md", "api.md", "openapi.yaml"):
        assert (installed / "share" / "doc" / "houston" / doc).is_file()


def test_man_page_renders_without_warnings_and_follows_the_settings_table(installed, tmp_path):
    need("groff")
    page = tmp_path / "houston.1"
    page.write_bytes(gzip.decompress((installed / "share/man/man1/houston.1.gz").read_bytes()))
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    need("man")
    r = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = re.sub(r".\x08", "", r.stdout)
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "ENVIRONMENT",
                    "FILES", "EXAMPLES", "SEE ALSO"):
        assert re.search(rf"^{section}$", text, re.M), section
    # every flag and variable of --help is in the page, and nothing else is
    help_text = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    server_help = help_text.split("Server flags")[1]
    flags = re.findall(r"^  (--[a-z-]+) ", server_help, re.M)
    assert len(flags) > 20
    for flag in flags:
        assert re.search(rf"^\s+{flag} ", text, re.M), flag
    for var in re.findall(r"env (HOUSTON_[A-Z_]+)", server_help):
        assert var in text
    for command in ("pub", "sub", "history", "status", "serve"):
        assert re.search(rf"^\s+{command}\b", text, re.M), command


def test_systemd_unit_verifies(installed, tmp_path):
    need("systemd-analyze")
    unit = (installed / "lib/systemd/system/houston.service").read_text()
    for line in ("Type=simple", "DynamicUser=yes", "StateDirectory=houston",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "NoNewPrivileges=yes", "SystemCallFilter=@system-service",
                 "EnvironmentFile=-/etc/default/houston"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
    assert re.search(r"^RestrictAddressFamilies=", unit, re.M)
    assert re.search(r"^LimitNOFILE=\d+", unit, re.M)
    assert "--db sqlite:${STATE_DIRECTORY}/houston.db" in unit
    # verify checks that ExecStart's binary exists and that man:houston(1)
    # resolves: point both at the installed tree.
    assert "ExecStart=/usr/local/bin/houston serve " in unit  # the PREFIX's binary
    (tmp_path / "houston.service").write_text(
        unit.replace("/usr/local/bin/houston", str(installed / "bin" / "houston")))
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "houston.service")],
                       capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, MANPATH=str(installed / "share" / "man")))
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


@pytest.mark.timeout(120)  # builds the package, then lintian: slow on a busy machine
def test_make_deb_passes_lintian():
    need("dpkg-deb")
    out = make("deb").stdout.strip().splitlines()[-1]
    deb = Path(out) if Path(out).is_absolute() else ROOT / out
    assert re.fullmatch(r"houston_[0-9.]+-1_[a-z0-9]+\.deb", deb.name), deb.name
    contents = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                              check=True).stdout
    paths = {line.split()[-1] for line in contents.splitlines()}
    for path in ("./usr/bin/houston", "./usr/share/man/man1/houston.1.gz",
                 "./lib/systemd/system/houston.service", "./etc/default/houston",
                 "./usr/share/doc/houston/copyright",
                 "./usr/share/doc/houston/changelog.Debian.gz"):
        assert path in paths, path
    assert re.search(r"^-rwxr-xr-x root/root .* \./usr/bin/houston$", contents, re.M)
    fields = subprocess.run(["dpkg-deb", "-f", deb, "Package", "Depends"], capture_output=True,
                            text=True, check=True).stdout
    assert "Package: houston" in fields
    for lib in ("libc6", "libuv1", "libjansson4", "libsqlite3-0"):
        assert lib in fields
    control = subprocess.run(["dpkg-deb", "--ctrl-tarfile", deb], capture_output=True,
                             check=True).stdout
    assert b"md5sums" in control and b"conffiles" in control
    need("lintian")
    r = subprocess.run(["lintian", "--no-tag-display-limit", deb], capture_output=True,
                       text=True, timeout=300)
    errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
    assert errors == [] and r.returncode == 0, r.stdout + r.stderr
