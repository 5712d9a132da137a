"""Secrets at rest: AES-256-GCM under a master key from the environment.

`TCR_MASTER_KEY` holds 32 bytes as url-safe base64 (`python -c "import base64,os;
print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`). Without it, a development key is created once in
`$TCR_DATA_DIR/dev-master.key` and a warning says so: never run production that way. Sealed text is
`sealed:v1:<kid>:<base64(nonce || ciphertext)>`, where <kid> names the master key (its first 8 hex digits of
SHA-256), so that rotation can tell which key sealed what (docs/security.md, "Key rotation").
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("tcr.sealing")
PREFIX = "sealed:v1:"
DEV_KEY_FILE = "dev-master.key"


class SealingError(ValueError):
    """A sealed value that this master key cannot open (wrong key, or tampered)."""


@dataclass(frozen=True)
class MasterKey:
    key: bytes
    source: str  # "environment" or the development key file's path
    # Keys this one replaced (TCR_PREVIOUS_MASTER_KEY): values they sealed still open during a rotation.
    previous: tuple[MasterKey, ...] = ()

    @property
    def kid(self) -> str:
        return hashlib.sha256(self.key).hexdigest()[:8]

    @classmethod
    def from_text(cls, text: str, source: str) -> MasterKey:
        try:
            key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
        except ValueError as exc:
            raise ValueError(f"the master key from {source} is not base64") from exc
        if len(key) != 32:
            raise ValueError(f"the master key from {source} must be 32 bytes (AES-256), not {len(key)}")
        return cls(key, source)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> MasterKey:
        environ = os.environ if environ is None else environ
        if environ.get("TCR_MASTER_KEY"):
            current = cls.from_text(environ["TCR_MASTER_KEY"], "environment")
        else:
            current = cls.development(Path(environ.get("TCR_DATA_DIR") or "./var"))
        return current.replacing(environ.get("TCR_PREVIOUS_MASTER_KEY"))

    def replacing(self, previous_text: str | None) -> MasterKey:
        """This key, still able to open what `previous_text` (TCR_PREVIOUS_MASTER_KEY) sealed."""
        if not previous_text:
            return self
        previous = MasterKey.from_text(previous_text, "TCR_PREVIOUS_MASTER_KEY")
        return MasterKey(self.key, self.source, (previous,))

    def sealed_by_me(self, value: str) -> bool:
        return is_sealed(value) and value[len(PREFIX) :].split(":", 1)[0] == self.kid

    @classmethod
    def development(cls, data_dir: Path) -> MasterKey:
        path = data_dir / DEV_KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")
        log.warning("TCR_MASTER_KEY is not set: using the development master key in %s (never in production)", path)
        return cls.from_text(path.read_text(), str(path))

    # --- bytes ---
    def encrypt(self, plain: bytes, context: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.key).encrypt(nonce, plain, context)

    def decrypt(self, sealed: bytes, context: bytes = b"") -> bytes:
        try:
            return AESGCM(self.key).decrypt(sealed[:12], sealed[12:], context)
        except Exception as exc:  # InvalidTag: wrong key or tampered
            raise SealingError("cannot open a value sealed with another master key, or tampered") from exc

    def seal_bytes(self, plain: bytes) -> str:
        return f"{PREFIX}{self.kid}:{base64.b64encode(self.encrypt(plain)).decode()}"

    def open_bytes(self, value: str) -> bytes:
        if not is_sealed(value):
            raise SealingError("not a sealed value")
        kid, payload = value[len(PREFIX) :].split(":", 1)
        key = next((k for k in (self, *self.previous) if k.kid == kid), self)
        return key.decrypt(base64.b64decode(payload))

    # --- text ---
    def seal(self, text: str) -> str:
        return f"{PREFIX}{self.kid}:{base64.b64encode(self.encrypt(text.encode())).decode()}"

    def open(self, value: str) -> str:
        """The text a seal() made; a value stored before sealing existed (no prefix) passes unchanged."""
        if not is_sealed(value):
            return value
        return self.open_bytes(value).decode()


def is_sealed(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


_lock = threading.Lock()
_current: MasterKey | None = None


def master_key() -> MasterKey:
    """The process's master key, read once from the environment."""
    global _current
    with _lock:
        if _current is None:
            _current = MasterKey.from_environment()
        return _current


def use_master_key(key: MasterKey | None) -> None:
    """Set (or with None, forget) the process's master key: for the composition root and tests."""
    global _current
    with _lock:
        _current = key


def seal(text: str) -> str:
    return master_key().seal(text)


def unseal(value: str) -> str:
    return master_key().open(value)
