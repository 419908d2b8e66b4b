"""The archive: one file holding a database snapshot, the files its rows reference and a
manifest, as a tar stream compressed with gzip and, with a key, encrypted (``crypto.py``).

Members: ``manifest.json`` (written last: it holds every other member's SHA-256),
``database/<vendor>`` (``pg_dump``'s custom format, or an SQLite database file) and
``files/<n>`` (the stored files, by number; the manifest maps each to its name in storage).

Reading never trusts the archive: members are streamed into a private folder, each hashed on
the way, and the archive is refused (``ArchiveError``, with a message that says why) when it
does not decrypt, does not decompress to its end, holds a member the manifest does not list or
misses one it lists, or any size or checksum differs. Nothing is restored before that.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .crypto import DecryptingReader, DecryptionError, EncryptingWriter, is_encrypted, key_decode

FORMAT = "orchestra-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEMBER = re.compile(r"^(manifest\.json|database/(postgresql|sqlite)|files/[0-9]{6,})$")
COPY_BYTES = 1024 * 1024


class ArchiveError(Exception):
    """The archive cannot be used; the message says why, for the person restoring it."""


@dataclass(frozen=True)
class Part:
    member: str
    size: int
    sha256: str


def _copy_hashing(source: IO[bytes], target: IO[bytes]) -> Part:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(COPY_BYTES):
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)
    return Part("", size, digest.hexdigest())


class _HashingReader:
    def __init__(self, source: IO[bytes]) -> None:
        self._source = source
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


class ArchiveWriter:
    """Writes an archive to ``target`` (a binary file); ``key`` (the raw 32 bytes) encrypts it.
    Add parts, then ``finish(manifest)``, which adds the checksums of the parts to it."""

    def __init__(self, target: IO[bytes], key: bytes | None) -> None:
        self._encrypting = EncryptingWriter(target, key) if key else None
        self._gzip = gzip.GzipFile(
            fileobj=self._encrypting or target, mode="wb", compresslevel=6, mtime=0
        )
        self._tar = tarfile.open(  # noqa: SIM115  (closed by finish)
            fileobj=self._gzip, mode="w|", format=tarfile.PAX_FORMAT
        )
        self.parts: dict[str, Part] = {}

    def add(self, member: str, source: IO[bytes], size: int) -> Part:
        assert MEMBER.match(member), member
        info = tarfile.TarInfo(member)
        info.size = size
        info.mode = 0o600
        reader = _HashingReader(source)
        self._tar.addfile(info, reader)  # reads exactly ``size``
        if reader.size != size:
            raise OSError(f"{member} changed while it was archived ({reader.size} != {size})")
        part = Part(member, size, reader.digest.hexdigest())
        self.parts[member] = part
        return part

    def add_path(self, member: str, path: Path) -> Part:
        with path.open("rb") as source:
            return self.add(member, source, path.stat().st_size)

    def finish(self, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        info.mode = 0o600
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.close()
        self._gzip.close()
        if self._encrypting:
            self._encrypting.close()


@dataclass(frozen=True)
class OpenedArchive:
    """A verified archive, unpacked in ``folder``: ``path(member)`` is where a part is."""

    folder: Path
    manifest: dict[str, Any]
    encrypted: bool

    def path(self, member: str) -> Path:
        return self.folder / member.replace("/", "__")


def refusal(reason: str) -> ArchiveError:
    return ArchiveError(f"Refused: {reason}. Nothing was changed.")


def archive_unpack(source: IO[bytes], *, key: str, folder: Path) -> OpenedArchive:
    """Unpack and verify the archive read from ``source`` into ``folder`` (empty, private).
    ``key`` is ``BACKUP_ENCRYPTION_KEY`` (may be empty for an archive that is not encrypted)."""
    head = source.read(len(b"AOBKENC\n"))
    encrypted = is_encrypted(head)
    stream: IO[bytes] = _Prefixed(head, source)  # type: ignore[assignment]
    if encrypted:
        if not key:
            raise refusal("the archive is encrypted and BACKUP_ENCRYPTION_KEY is not set")
        try:
            stream = DecryptingReader(stream, key_decode(key))  # type: ignore[assignment]
        except ValueError as error:  # DecryptionError included
            raise refusal(str(error)) from error
    found: dict[str, Part] = {}
    manifest_bytes = b""
    try:
        with (
            gzip.GzipFile(fileobj=stream, mode="rb") as unzipped,
            tarfile.open(fileobj=unzipped, mode="r|") as tar,
        ):
            for info in tar:
                if not info.isfile() or not MEMBER.match(info.name) or info.name in found:
                    raise refusal(f"the archive holds an unexpected member {info.name!r}")
                member = tar.extractfile(info)
                assert member is not None
                if info.name == MANIFEST:
                    manifest_bytes = member.read(16 * 1024 * 1024 + 1)
                    found[MANIFEST] = Part(MANIFEST, len(manifest_bytes), "")
                    continue
                with (folder / info.name.replace("/", "__")).open("xb") as target:
                    part = _copy_hashing(member, target)
                found[info.name] = Part(info.name, part.size, part.sha256)
            # Whatever follows the tar's end (gzip's trailer, the last encrypted chunk) is
            # read too, so a cut or altered end is found.
            while unzipped.read(COPY_BYTES):
                pass
    except DecryptionError as error:
        raise refusal(str(error)) from error
    except (EOFError, gzip.BadGzipFile, zlib.error, tarfile.TarError, OSError) as error:
        kind = "truncated" if isinstance(error, EOFError) else "damaged"
        raise refusal(f"the archive is {kind} ({type(error).__name__}: {error})") from error
    if not manifest_bytes:
        raise refusal("the archive has no manifest (it is not a backup, or it is truncated)")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as error:
        raise refusal("the archive's manifest is not valid JSON") from error
    manifest_check(manifest, found)
    return OpenedArchive(folder, manifest, encrypted)


def manifest_check(manifest: Any, found: dict[str, Part]) -> None:
    """Refuse a manifest of another format or a newer version, and any part that differs."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise refusal("this is not an AI Orchestra backup (its manifest says another format)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise refusal(
            f"the archive's format version {version} is newer than this platform reads "
            f"({FORMAT_VERSION}); restore it with the version that made it or a later one"
        )
    listed: dict[str, dict[str, Any]] = {}
    for entry in [manifest.get("database") or {}, *(manifest.get("files") or [])]:
        if not isinstance(entry, dict) or not isinstance(entry.get("member"), str):
            raise refusal("the archive's manifest lists a part without its member name")
        listed[entry["member"]] = entry
    extra = set(found) - set(listed) - {MANIFEST}
    missing = set(listed) - set(found)
    if missing:
        raise refusal(
            f"the archive misses {len(missing)} part(s) its manifest lists: "
            f"{', '.join(sorted(missing)[:5])}"
        )
    if extra:
        raise refusal(
            f"the archive holds parts its manifest does not list: {', '.join(sorted(extra)[:5])}"
        )
    for member, entry in listed.items():
        part = found[member]
        if entry.get("size") != part.size or entry.get("sha256") != part.sha256:
            raise refusal(f"the checksum of {member} does not match the manifest (damaged)")


class _Prefixed:
    """``source`` with ``head`` (already read from it) put back in front."""

    def __init__(self, head: bytes, source: IO[bytes]) -> None:
        self._head = head
        self._source = source

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._source.read(size)
        if size < 0:
            data, self._head = self._head + self._source.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        if len(data) < size:
            data += self._source.read(size - len(data))
        return data
