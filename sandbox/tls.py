"""A throw-away certificate authority for the HTTPS emulator (simple-salesforce only speaks https).

The CA's PEM is written to disk so that clients in other processes can trust it
(`requests.Session.verify = ca_path`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TestCA:
    ca_path: Path
    server_context: ssl.SSLContext

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))


def make_ca(directory: Path) -> TestCA:
    """Make a CA and a server certificate for 127.0.0.1 / localhost; write the CA to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="winback sandbox")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_path = directory / "sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return TestCA(ca_path=ca_path, server_context=context)
