"""A JWT signing key for the Salesforce emulator's app, made like an admin would with openssl:
an RSA key and a self-signed X.509 certificate (`openssl req -x509 -newkey rsa:2048 -nodes`).

The key goes to a file only the current user can read (what `SF_PRIVATE_KEY_FILE` names); the
certificate is what gets uploaded to the app (the emulator's `jwt_public_key`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class SigningKey:
    key_path: Path
    key_pem: str
    certificate_pem: str


def make_signing_key(directory: Path, name: str = "winback-sandbox-jwt") -> SigningKey:
    """A 2048-bit RSA key (PKCS#8 PEM, mode 0600) in `directory` and its certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=365))
                   .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    key_path = directory / f"{name}.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key_pem)
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    (directory / f"{name}.crt").write_text(cert_pem, encoding="utf-8")
    return SigningKey(key_path, key_pem, cert_pem)
