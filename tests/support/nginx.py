"""Debian's nginx in front of a test server, running the shipped ``nginx/`` template.

The template is rendered as the official nginx image renders ``/etc/nginx/templates`` (envsubst
of the variables set on the service), with only the upstream, ports and paths changed, and run
with a main configuration of its own in a temporary directory: pid, logs and temporary files
there, unprivileged ports, a throw-away certificate for 127.0.0.1 made at test time. Without
the ``nginx`` package the tests that need it are skipped, or fail when ``CI`` is set (CI
installs it in ``.ci/run``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Self

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fake_upstream import free_port
from tests.support.processes import REPO_ROOT, ServerProcess, port_open

TEMPLATE = REPO_ROOT / "nginx" / "templates" / "default.conf.template"
VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
PACKAGE = "nginx"
MIME_TYPES = Path("/etc/nginx/mime.types")


def nginx_binary() -> str:
    """The nginx executable; skips the test without it (fails under CI)."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    message = f"nginx is missing: apt-get install {PACKAGE} (Debian's package)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI installs it in .ci/run", pytrace=False)
    pytest.skip(message)


def render_template(values: dict[str, str], template: Path = TEMPLATE) -> str:
    """The template with its ``${NAME}`` variables replaced, as envsubst does with exactly these
    variables defined; every variable the template uses must be given."""
    text = template.read_text()
    used = set(VARIABLE.findall(text))
    assert used == set(values), f"the template uses {sorted(used)}, given {sorted(values)}"
    return VARIABLE.sub(lambda match: values[match.group(1)], text)


def self_signed_certificate(directory: Path) -> Path:
    """``fullchain.pem`` and ``privkey.pem`` for 127.0.0.1 and localhost; returns the
    certificate, which clients trust as their only authority."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "fullchain.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path


class Nginx(ServerProcess):
    """nginx with the shipped template in front of ``upstream`` (host:port), in ``root``."""

    def __init__(self, root: Path, upstream: str) -> None:
        self.binary = nginx_binary()
        self.root = root
        self.http_port, self.https_port = free_port(), free_port()
        self.static_root = root / "static"
        self.static_root.mkdir(parents=True, exist_ok=True)
        self.certificate = self_signed_certificate(root / "certs")
        self.values = {
            "ORCHESTRA_UPSTREAM": upstream,
            "NGINX_HTTP_PORT": f"127.0.0.1:{self.http_port}",
            "NGINX_HTTPS_PORT": f"127.0.0.1:{self.https_port}",
            "NGINX_SERVER_NAME": "_",
            "NGINX_CERT_DIR": str(root / "certs"),
            "NGINX_STATIC_ROOT": f"{self.static_root}/",
            "NGINX_ACME_ROOT": str(root / "acme"),
        }
        (root / "conf.d").mkdir(exist_ok=True)
        (root / "temp").mkdir(exist_ok=True)
        (root / "conf.d" / "default.conf").write_text(render_template(self.values))
        self.conf = root / "nginx.conf"
        self.conf.write_text(self._main_conf())
        prefix = ["-p", f"{root}/", "-c", str(self.conf), "-e", str(root / "error.log")]
        super().__init__("nginx", [self.binary, *prefix, "-g", "daemon off;"], dict(os.environ))
        self.port = self.https_port

    def _main_conf(self) -> str:
        """What the official image's /etc/nginx/nginx.conf does, with every path in ``root``."""
        root = self.root
        temp = "\n".join(
            f"    {kind}_temp_path {root}/temp/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root the workers must read the static files in a private temporary directory.
        user = "user root;\n" if os.geteuid() == 0 else ""
        mime = f"    include {MIME_TYPES};\n" if MIME_TYPES.exists() else ""
        return (
            f"{user}worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"{mime}    default_type application/octet-stream;\n"
            f"    access_log {root}/access.log;\n"
            "    sendfile on;\n"
            f"{temp}\n"
            f"    include {root}/conf.d/*.conf;\n"
            "}\n"
        )

    def check(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on the rendered configuration."""
        return subprocess.run(
            [
                self.binary,
                "-t",
                "-p",
                f"{self.root}/",
                "-c",
                str(self.conf),
                "-e",
                str(self.root / "error.log"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def start(self, ready: Callable[[], bool] | None = None, timeout: float = 15.0) -> Self:
        return super().start(ready or port_open(self.https_port), timeout)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificate))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}/ws/"

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""
