"""Checkpoints (c2sp.org/tlog-checkpoint) signed as notes (c2sp.org/signed-note) with Ed25519.

    registration-hub.example/audit          origin (settings.audit_origin; also the key's name)
    1024                                    tree size
    <base64 root hash>                      RFC 9162 root of the first 1024 leaves
                                            blank line
    — registration-hub.example/audit <base64(key id || Ed25519 signature of the three lines)>

The log's key lives in the secret store. Its secret is a random string generated once, when the
secret is created (CloudFormation's GenerateSecretString in AWS, the same call in local mode); the
Ed25519 private key is derived from it with HKDF-SHA256, so there is no key-generation step to run
and the key exists nowhere else. Partners pin the verifier key, `<name>+<key id hex>+<base64(0x01 ||
public key)>`, the form Go's golang.org/x/mod/sumdb/note and the transparency-dev tools read; operators
print it with `audit.verifier_key()`. Rotating the key is putting a new random value in the secret:
checkpoints signed before stay verifiable with the old verifier key.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

ED25519 = b"\x01"  # signed-note signature type
EM_DASH = "\u2014"
_HKDF_INFO = b"registration-hub audit log Ed25519 key v1"


def check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ValueError("a note key name is non-empty, without spaces or '+'")
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """signed-note: SHA-256(key name || 0x0A || signature type || public key)[:4]."""
    return hashlib.sha256(check_name(name).encode() + b"\n" + ED25519 + public_key).digest()[:4]


def encode_verifier_key(name: str, public_key: bytes) -> str:
    return f"{name}+{key_id(name, public_key).hex()}+{base64.b64encode(ED25519 + public_key).decode()}"


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    if "\n" in origin or not origin:
        raise ValueError("the origin is one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


@dataclass(frozen=True)
class LogKey:
    name: str
    private_key: object  # cryptography's Ed25519PrivateKey
    public_key: bytes

    @property
    def verifier_key(self) -> str:
        return encode_verifier_key(self.name, self.public_key)

    def sign(self, text: str) -> str:
        """The signed note: `text` (ending in a newline), a blank line, one signature line."""
        if not text.endswith("\n") or "\n\n" in text:
            raise ValueError("note text ends in a newline and has no blank line")
        signature = self.private_key.sign(text.encode())  # type: ignore[attr-defined]
        encoded = base64.b64encode(key_id(self.name, self.public_key) + signature).decode()
        return f"{text}\n{EM_DASH} {self.name} {encoded}\n"


def key_from_seed(name: str, seed: bytes) -> LogKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private_key = Ed25519PrivateKey.from_private_bytes(seed)
    public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return LogKey(check_name(name), private_key, public_key)


def key_from_secret(name: str, secret: str) -> LogKey:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if len(secret) < 32:
        raise ValueError("the audit key secret is too short to derive a key from")
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret.encode())
    return key_from_seed(name, seed)


def log_key() -> LogKey:
    """The log's signing key, from the secret store (one GetSecretValue)."""
    from chalicelib import aws
    from chalicelib.settings import get_settings

    s = get_settings()
    secret = aws.client("secretsmanager").get_secret_value(SecretId=s.audit_key_secret_id)["SecretString"]
    return key_from_secret(s.audit_origin, secret)


def verifier_key() -> str:
    """What a partner pins to verify checkpoints: print it for them (operators)."""
    return log_key().verifier_key
