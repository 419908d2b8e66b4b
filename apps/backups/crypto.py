"""The archives' encryption: AES-256-GCM over chunks, streamed (an archive is never held in
memory), authenticated chunk by chunk and as a whole.

Fernet would have been simpler, but it encrypts one message in memory and base64-encodes it
(a third larger): a database dump of several gigabytes does not fit that. The layout follows
the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, 2015)::

    header   MAGIC (8) | version (1) | salt (16) | key check (16)
    chunk*   length (4, big-endian) | AES-GCM(nonce = counter (11) | last (1), aad = header)

Each archive gets a key of its own, derived with HKDF-SHA256 from ``BACKUP_ENCRYPTION_KEY``
and the archive's random salt, so the counter nonces never repeat under one key. The key check
(another HKDF output) tells a wrong key from a damaged archive before anything is decrypted. A
chunk's tag covers its place and whether it is the last: chunks reordered, dropped, or cut off
after any chunk but the last are all refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"AOBKENC\n"
VERSION = 1
SALT_BYTES = 16
CHECK_BYTES = 16
HEADER_BYTES = len(MAGIC) + 1 + SALT_BYTES + CHECK_BYTES
CHUNK_BYTES = 1024 * 1024
TAG_BYTES = 16


class DecryptionError(ValueError):
    """The archive cannot be decrypted: wrong or missing key, damaged or truncated."""


def key_decode(key: str) -> bytes:
    """The 32 bytes of a key in URL-safe base64 (``Fernet.generate_key()``'s form)."""
    try:
        raw = base64.urlsafe_b64decode(key.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(
            "BACKUP_ENCRYPTION_KEY must be 32 random bytes in URL-safe base64 (44 characters), "
            'e.g. the output of: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        )
    return raw


def _derive(key: bytes, salt: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=purpose).derive(key)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def is_encrypted(head: bytes) -> bool:
    return head.startswith(MAGIC)


class EncryptingWriter:
    """A write-only binary file that encrypts what it is given into ``target``; ``close()``
    writes the last chunk (and does not close ``target``)."""

    def __init__(self, target: IO[bytes], key: bytes) -> None:
        salt = os.urandom(SALT_BYTES)
        self._target = target
        self._aead = AESGCM(_derive(key, salt, b"orchestra-backup archive key"))
        self._header = MAGIC + bytes([VERSION]) + salt + _derive(key, salt, b"key check")[:16]
        self._buffer = bytearray()
        self._counter = 0
        self.closed = False
        target.write(self._header)

    def _seal(self, data: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._counter, last), data, self._header)
        self._target.write(struct.pack(">I", len(sealed)) + sealed)
        self._counter += 1

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) > CHUNK_BYTES:
            self._seal(bytes(self._buffer[:CHUNK_BYTES]), last=False)
            del self._buffer[:CHUNK_BYTES]
        return len(data)

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
            self.closed = True


class DecryptingReader:
    """A read-only binary file of what ``source`` holds encrypted; raises ``DecryptionError``
    for a wrong key (before reading any chunk) and for a damaged or truncated stream."""

    def __init__(self, source: IO[bytes], key: bytes) -> None:
        header = source.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or not is_encrypted(header):
            raise DecryptionError("the archive's encryption header is missing or cut short")
        if header[len(MAGIC)] != VERSION:
            raise DecryptionError(f"unknown encryption version {header[len(MAGIC)]}")
        salt = header[len(MAGIC) + 1 : len(MAGIC) + 1 + SALT_BYTES]
        if header[-CHECK_BYTES:] != _derive(key, salt, b"key check")[:16]:
            raise DecryptionError("the encryption key does not open this archive (wrong key)")
        self._source = source
        self._header = header
        self._aead = AESGCM(_derive(key, salt, b"orchestra-backup archive key"))
        self._counter = 0
        self._plain = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        prefix = self._source.read(4)
        if len(prefix) < 4:
            raise DecryptionError("the archive is truncated (its last encrypted chunk is missing)")
        (length,) = struct.unpack(">I", prefix)
        if length < TAG_BYTES or length > CHUNK_BYTES + TAG_BYTES:
            raise DecryptionError("the archive is damaged (an encrypted chunk's length is wrong)")
        sealed = self._source.read(length)
        if len(sealed) < length:
            raise DecryptionError("the archive is truncated (an encrypted chunk is cut short)")
        for last in (False, True):
            try:
                self._plain = self._aead.decrypt(_nonce(self._counter, last), sealed, self._header)
            except InvalidTag:
                continue
            self._counter += 1
            if last:
                self._ended = True
                if self._source.read(1):
                    raise DecryptionError("the archive is damaged (data after its last chunk)")
            return
        raise DecryptionError("the archive is damaged (an encrypted chunk does not authenticate)")

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = size if size >= 0 else None
        while wanted is None or wanted > 0:
            if not self._plain:
                if self._ended:
                    break
                self._next_chunk()
                continue
            take = self._plain if wanted is None else self._plain[:wanted]
            self._plain = self._plain[len(take) :]
            parts.append(take)
            if wanted is not None:
                wanted -= len(take)
        return b"".join(parts)
