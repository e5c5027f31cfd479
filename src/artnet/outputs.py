"""Where artnet writes: nothing replaced unless asked, the place checked before the work, files whole or absent.

Every command that writes follows four rules (``docs/bad-input.md``):

* it refuses, before any work, to replace what is not its own: an existing file or a folder of other
  files stays as it is unless the user asks (``--force``, ``train.overwrite=true``);
* it checks, before the work, that it can write where it will: the folder exists or can be made, and
  a file can be created in it (:func:`output_folder`);
* a file appears complete or not at all (:func:`atomic_write`, :func:`atomic_path` for libraries that
  write by name): written under a temporary name in its folder, then renamed over the old one; a write
  that fails (a full disk) removes the temporary file and leaves the old file as it was;
* an output is never one of the command's inputs (:func:`not_an_input`), whatever the user asks.

A folder that several processes may build at once (the built-in dataset's cache and its flow, which
two ``artnet demo`` runs share) is built under :func:`folder_lock`: the second waits, then finds it built.

Files are created with the permissions of any other file the user makes (``0o666`` less the umask),
not the ``0o600`` of a temporary file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Iterable, Iterator

from .errors import OutputError

log = logging.getLogger(__name__)


def output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a folder artnet can write in: made if missing, then probed with a temporary file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise OutputError(f"{path}: cannot write there ({_blocked(path, error)})") from None
    return path


def new_file(path: str | os.PathLike, *, force: bool, how: str = "--force", inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """``path`` for a file about to be written: refused if a file is there (unless ``force``) or a folder is,
    and always if it is one of the command's ``inputs`` (:func:`not_an_input`); its folder checked with
    :func:`output_folder`."""
    path = not_an_input(path, inputs)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give the path of the file to write")
    if path.exists() and not force:
        raise OutputError(f"{path}: exists; {how} replaces it")
    output_folder(path.parent)
    return path


def not_an_input(path: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> Path:
    """``path``, unless writing it would replace one of ``inputs`` (the same file under any name, a link):
    an output never replaces what the command reads, ``--force`` or not."""
    path = Path(path)
    if path.exists():
        for item in inputs:
            try:
                same = os.path.samefile(path, item)
            except OSError:  # an input that does not exist (the command says so itself)
                continue
            if same:
                named = "" if os.path.normpath(item) == os.path.normpath(path) else f" ({item})"
                raise OutputError(f"{path}: is an input of this command{named}; write the output elsewhere")
    return path


def new_folder(path: str | os.PathLike, *, force: bool, how: str = "--force") -> Path:
    """``path`` for a folder about to be written (a model folder): refused if files are there (unless
    ``force``) or it is a file; made and checked with :func:`output_folder`."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputError(f"{path}: a folder with files in it; {how} writes into it")
    return output_folder(path)


def refuse_replacing(folder: Path, found: list[Path], what: str, how: str) -> None:
    """One line naming what a run would replace in ``folder`` (``found``, if any) and how to allow it."""
    if found:
        names = ", ".join(p.relative_to(folder).as_posix() for p in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise OutputError(f"{folder}: holds {what} ({names}); {how}")


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the folder ``path`` for this process alone while the block runs; a process that finds it
    held says so on the log and waits.

    An advisory ``flock`` on the folder itself, so nothing is written into it; the system releases
    it when the process ends, killed or not. Where there is no ``flock`` (Windows) or the file
    system refuses one on a folder (some network mounts), the block runs unguarded.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another process is writing here; waiting for it", path)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:
            pass  # no lock to be had on this file system: unguarded, as without flock
        yield
    finally:
        os.close(descriptor)  # and with it the lock


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", newline: str | None = None) -> Iterator[IO]:
    """A file whose content becomes ``path`` when the block ends; nothing changes at ``path`` if it fails.

    A write that fails (no space left, a file size limit) is an :class:`OutputError` naming ``path``,
    even when a library wrapped the operating system's error in its own (``torch.save`` does).
    """
    with atomic_path(path) as temporary:
        file = _ErrorRecordingFile(open(temporary, mode, newline=newline))
        try:
            with file.raw:
                yield file
                file.flush()
                os.fsync(file.fileno())
        except BaseException as error:
            if file.error is not None and error is not file.error:
                raise file.error from None  # the system's reason, not the library's wrapping of it
            raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file name beside ``path``, for a library that writes by name (PyAV, ONNX):
    renamed to ``path`` when the block ends, removed if it fails, which leaves ``path`` as it was. A
    failed write is an :class:`OutputError` naming ``path``, as in :func:`atomic_write`."""
    path = Path(path)
    existed = path.exists()
    kept = "the previous file is unchanged" if existed else "nothing was left"
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OutputError(f"{path}: not written ({_blocked(path.parent, error)}); {kept}") from None
    os.close(handle)
    try:
        yield Path(temporary)
        _fsync(temporary)
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if not isinstance(error, OSError):
            raise
        raise OutputError(f"{path}: not written ({error.strerror or error}); {kept}") from None


def _fsync(path: str) -> None:
    """The file's content on the disk before it is renamed into place (a crash then leaves old or new, whole)."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


class _ErrorRecordingFile:
    """A file that remembers the ``OSError`` of a failed write, which ``torch.save`` turns into a bare RuntimeError."""

    def __init__(self, raw: IO):
        self.raw = raw
        self.error: OSError | None = None

    def write(self, data):
        try:
            return self.raw.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


def _blocked(path: Path, error: OSError) -> str:
    """Why a folder cannot be made or written: a file in the way, by name, or the system's reason."""
    for parent in [path, *path.parents]:
        if parent.exists():
            return f"{parent} is a file" if not parent.is_dir() else (error.strerror or str(error))
    return error.strerror or str(error)
