"""Where a snapshot lives, its integrity checks, and the atomic publish with its recovery.

On a local disk a version is written into a ``-tmp-`` sibling and published by two renames:
``path`` to an ``-old-`` sibling, the finished version to ``path``. A crash between them leaves
the snapshot readable under its ``-old-`` name; the next write puts it back first
(:func:`_recover`).

Object stores (any other filesystem) have no atomic rename: a version is written under a
prefix of its own, ``path/v-<time>-<random>/``, and published by writing the manifest,
``path/_jetti_snapshot.json`` (one object, replaced at once), which names that prefix. Readers
follow the manifest only; a write killed before it leaves a prefix nothing names. After a
publish the versions beyond the last ``keep_versions`` are removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import posixpath
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import SnapshotError
from .columns import PARTITION_UNITS, _good_specs

#: Name of the manifest and completion marker inside a snapshot directory.
MANIFEST = "_jetti_snapshot.json"
FORMAT = "jetti-snapshot/1"
#: Temporary siblings older than this are removed even when their writer cannot be checked.
STALE_SECONDS = 24 * 3600
#: Versions kept on an object store after a publish (the current one and the one before it).
DEFAULT_KEEP_VERSIONS = 2
#: How the folder of a version starts, on an object store.
VERSION_PREFIX = "v-"
_STAMP = "%Y%m%dT%H%M%S%fZ"


# --------------------------------------------------------------------------------------------
# where the dataset lives
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A snapshot location: a pyarrow filesystem, the directory inside it and its siblings."""

    fs: pafs.FileSystem
    root: str
    url: str  # the root as the user wrote it (a URL or an absolute local path)

    @classmethod
    def of(cls, path: str | os.PathLike[str], filesystem: Any = None,
           storage_options: Mapping[str, Any] | None = None) -> _Target:
        """The location of ``path``: a local path, or a URL read by pyarrow or fsspec.

        ``storage_options`` go to fsspec, as pandas passes them (``s3://`` needs ``s3fs``).
        """
        if storage_options is not None:
            return cls._fsspec(path, filesystem, storage_options)
        if filesystem is not None:
            fs = filesystem if isinstance(filesystem, pafs.FileSystem) else \
                pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
            root = _strip(str(path))
            return cls(fs, root, root)
        text = os.fspath(path)
        if "://" not in text:
            root = _strip(os.path.abspath(os.path.expanduser(text)))
            return cls(pafs.LocalFileSystem(), root, root)
        try:
            fs, inner = pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            try:
                import fsspec
            except ImportError:  # pragma: no cover - fsspec is optional
                raise SnapshotError(f"unsupported URL {text!r}: install fsspec") from None
            try:
                ffs, inner = fsspec.core.url_to_fs(text)
            except (ValueError, ImportError) as exc:
                raise SnapshotError(f"unsupported URL {text!r}: {exc}") from None
            fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
        root = _strip(inner)
        return cls(fs, root, root if isinstance(fs, pafs.LocalFileSystem) else text.rstrip("/"))

    @classmethod
    def _fsspec(cls, path: str | os.PathLike[str], filesystem: Any,
                storage_options: Mapping[str, Any]) -> _Target:
        text = os.fspath(path)
        if filesystem is not None or "://" not in text:
            raise SnapshotError("storage_options are for a URL (s3://, gs://, abfs://, ...), "
                                f"not for {'a filesystem' if filesystem else 'a local path'}")
        try:
            import fsspec

            ffs, inner = fsspec.core.url_to_fs(text, **dict(storage_options))
        except ImportError as exc:
            raise SnapshotError(f"cannot open {text!r}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise SnapshotError(f"cannot open {text!r} with these storage_options: "
                                f"{exc}") from None
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(ffs))
        root = _strip(inner)
        return cls(fs, root, text.rstrip("/"))

    @property
    def versioned(self) -> bool:
        """Whether versions are published by manifest (object stores) rather than rename."""
        return not isinstance(self.fs, pafs.LocalFileSystem)

    def version_dir(self, manifest: Mapping[str, Any]) -> str:
        """The folder holding the files of the version a manifest describes."""
        version = manifest.get("version")
        return self.root if version is None else _join(self.root, version)

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.root) or "/"

    @property
    def name(self) -> str:
        return posixpath.basename(self.root)

    def sibling(self, kind: str, tag: str) -> str:
        return _join(self.parent, f".{self.name}.jetti-{kind}-{tag}")

    def siblings(self, kind: str) -> list[str]:
        head = f".{self.name}.jetti-{kind}-"
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.parent, allow_not_found=True))
        except OSError:
            return []
        return sorted(i.path for i in infos
                      if i.type == pafs.FileType.Directory and i.base_name.startswith(head))

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def is_complete(self, path: str) -> bool:
        return bool(self.fs.get_file_info(_join(path, MANIFEST)).type == pafs.FileType.File)

    def display(self, path: str) -> str:
        """``path`` as the user would write it (siblings keep the URL's scheme)."""
        if path == self.root:
            return self.url
        if self.url == self.root:
            return path
        if path.startswith(self.root + "/"):
            return self.url + path[len(self.root):]
        return f"{self.url.rsplit('/', 1)[0]}/{posixpath.basename(path)}"


def _strip(path: str) -> str:
    path = path.replace(os.sep, "/") if os.sep != "/" else path
    return path.rstrip("/") or "/"


def _join(*parts: str) -> str:
    return posixpath.join(*parts)


def _open_published(target: _Target, *, data: bool = True) -> tuple[str, dict[str, Any]]:
    """The directory of the published snapshot and its checked manifest.

    A publish killed between its two renames left the snapshot under its ``-old-`` name: it is
    read from there (a writer puts it back first, see :func:`_recover`).  ``data=False`` checks
    only what a full refresh needs (the query), not the file list and watermark.
    """
    root = target.root
    if not target.is_complete(root):
        old = [] if target.versioned else \
            [p for p in target.siblings("old") if target.is_complete(p)]
        if not target.exists(root) and old:
            root = old[-1]  # killed between the two renames of a publish
        elif target.exists(root):
            raise SnapshotError(f"{target.display(root)} is not a completed snapshot (no "
                                f"{MANIFEST}); an interrupted write leaves no marker")
        else:
            raise SnapshotError(f"no snapshot at {target.display(root)}")
    with target.fs.open_input_stream(_join(root, MANIFEST)) as handle:
        try:
            manifest = json.loads(handle.read().decode("utf-8"))
        except ValueError as exc:
            raise SnapshotError(f"unreadable {MANIFEST} in {target.display(root)}: {exc}; "
                                f"{_redo(target)}") from None
    if not isinstance(manifest, dict):
        raise SnapshotError(f"unreadable {MANIFEST} in {target.display(root)}: not a JSON "
                            f"object; {_redo(target)}")
    if "format" not in manifest:
        if data:
            raise SnapshotError(f"{target.display(root)}: damaged {MANIFEST} (no 'format'); "
                                f"{_redo(target)}")
    elif manifest["format"] != FORMAT:
        raise SnapshotError(f"{target.display(root)}: unknown snapshot format "
                            f"{manifest['format']!r} (this version reads {FORMAT!r})")
    _check_manifest(target, root, manifest, data=data)
    return target.version_dir(manifest) if root == target.root else root, manifest


# --------------------------------------------------------------------------------------------
# integrity: the manifest lists every data file with its rows and size
# --------------------------------------------------------------------------------------------


def _redo(target: _Target, *, query_lost: bool = False) -> str:
    """What to do about a damaged snapshot, as one clause."""
    if query_lost:
        return "re-run snapshot(...) for this path to replace it"
    path = target.display(target.root)
    return (f"rewrite it with refresh_snapshot({path!r}, full=True) (jetti-frames refresh "
            f"{path} --full) or re-run the snapshot")


def _check_manifest(target: _Target, root: str, manifest: Mapping[str, Any], *,
                    data: bool) -> None:
    """Refuse a manifest that lacks a key, or whose file list does not add up to its rows."""
    where = f"{target.display(root)}: damaged {MANIFEST}"
    partition = manifest.get("partition_by")
    version = manifest.get("version")
    if version is not None and not _good_version(version):
        raise SnapshotError(f"{where} (bad 'version' {str(version)[:40]!r}); "
                            f"{_redo(target)}")
    if not isinstance(manifest.get("resource"), str) or \
            not isinstance(manifest.get("query"), dict) or \
            not isinstance(manifest.get("options") or {}, dict) or \
            not (partition is None or _good_partition(partition)):
        raise SnapshotError(f"{where} (no 'resource', 'query', or a bad 'options' or "
                            f"'partition_by'); {_redo(target, query_lost=True)}")
    if not data:
        return
    missing = [k for k in ("columns", "files", "rows", "watermark") if k not in manifest]
    if missing:
        raise SnapshotError(f"{where} (no {', '.join(map(repr, missing))}); {_redo(target)}")
    files, columns, rows = manifest["files"], manifest["columns"], manifest["rows"]
    if not _good_specs(columns):
        raise SnapshotError(f"{where} (bad 'columns'); {_redo(target)}") from None
    if not isinstance(files, list) or not all(_good_entry(f) for f in files) \
            or not _whole(rows):
        raise SnapshotError(f"{where} (bad 'files' or 'rows'); {_redo(target)}")
    listed = sum(f["rows"] for f in files)
    if listed != rows:
        raise SnapshotError(f"{where}: its files hold {listed} rows, not the {rows} it "
                            f"records (a file is missing from the list); {_redo(target)}")
    watermark = manifest["watermark"]
    if watermark is not None and not _is_timestamp(watermark):
        raise SnapshotError(f"{where} (bad watermark {str(watermark)[:40]!r}); {_redo(target)}")


def _good_version(raw: Any) -> bool:
    return isinstance(raw, str) and raw.startswith(VERSION_PREFIX) and "/" not in raw \
        and ".." not in raw


def _good_partition(raw: Any) -> bool:
    return (isinstance(raw, dict) and isinstance(raw.get("column"), str)
            and raw.get("unit") in (None, *PARTITION_UNITS))


def _good_entry(entry: Any) -> bool:
    """A file entry: a relative path inside the snapshot, a row count, maybe a size."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return False
    parts = entry["path"].split("/")
    return (bool(entry["path"]) and not entry["path"].startswith("/") and ".." not in parts
            and _whole(entry.get("rows")) and (entry.get("size") is None
                                               or _whole(entry["size"])))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return pd.Timestamp(value).tzinfo is not None
    except ValueError:
        return False


def _check_files(target: _Target, root: str, manifest: Mapping[str, Any]) -> None:
    """Every listed file exists with the size the manifest records (cheap: no file is opened).

    Manifests written before sizes were recorded have their files' footers read instead.
    Files the manifest does not list are ignored.
    """
    entries = manifest["files"]
    infos = target.fs.get_file_info([_join(root, e["path"]) for e in entries]) if entries else []
    for entry, info in zip(entries, infos, strict=True):
        if info.type != pafs.FileType.File:
            raise _damaged(target, root, entry["path"], "missing")
        size = entry.get("size")
        if size is not None and info.size != size:
            raise _damaged(target, root, entry["path"],
                           f"{info.size} bytes, the manifest records {size}")
        if size is None:
            try:
                with target.fs.open_input_file(info.path) as handle:
                    rows = pq.ParquetFile(handle).metadata.num_rows
            except (pa.ArrowException, OSError) as exc:
                raise _damaged(target, root, entry["path"], exc) from None
            _check_rows(target, root, entry, rows)


def _check_rows(target: _Target, root: str, entry: Mapping[str, Any], rows: int) -> None:
    if rows != entry["rows"]:
        raise _damaged(target, root, entry["path"],
                       f"{rows} rows, the manifest records {entry['rows']}")


def _check_footers(target: _Target, root: str, manifest: Mapping[str, Any],
                   dataset: pads.FileSystemDataset) -> None:
    """Each file's footer holds the rows the manifest records (the scan reuses the footers)."""
    entries = {_join(root, e["path"]): e for e in manifest["files"]}
    for fragment in dataset.get_fragments():
        entry = entries.get(fragment.path)
        if entry is None:  # pragma: no cover - the dataset is built from this list
            continue
        try:
            rows = fragment.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(target, root, entry["path"], exc) from None
        _check_rows(target, root, entry, rows)


def _culprit(dataset: pads.FileSystemDataset, root: str, manifest: Mapping[str, Any],
             columns: list[str]) -> str:
    """The listed file a failed scan could not read (each is read alone to find it)."""
    names = {_join(root, e["path"]): e["path"] for e in manifest["files"]}
    for fragment in dataset.get_fragments():
        try:
            fragment.to_table(columns=[c for c in columns
                                       if c in fragment.physical_schema.names])
        except (pa.ArrowException, OSError):
            return names.get(fragment.path, str(fragment.path))
    return "a data file"


def _file_tables(target: _Target, root: str, entry: Mapping[str, Any],
                 batch_size: int) -> Iterator[pa.Table]:
    """The rows of one listed file, batch by batch, after checking its footer's row count."""
    with target.fs.open_input_file(_join(root, entry["path"])) as handle:
        parquet = pq.ParquetFile(handle)
        _check_rows(target, root, entry, parquet.metadata.num_rows)
        for batch in parquet.iter_batches(batch_size=batch_size):
            yield pa.Table.from_batches([batch])


def _damaged(target: _Target, root: str, name: str, why: Any) -> SnapshotError:
    """The error for a listed data file that is missing or unreadable."""
    text = " ".join(str(why).split()) or type(why).__name__
    if len(text) > 160:
        text = text[:157] + "..."
    return SnapshotError(f"{target.display(root)}: data file {name} is damaged ({text}); "
                         f"{_redo(target)}")


def _check_target(target: _Target) -> None:
    info = target.fs.get_file_info(target.root)
    if info.type == pafs.FileType.File:
        raise SnapshotError(f"{target.display(target.root)} is a file, not a snapshot directory")
    if info.type == pafs.FileType.Directory and not target.is_complete(target.root):
        inside = target.fs.get_file_info(pafs.FileSelector(target.root))
        if target.versioned:  # versions of writes killed before their manifest
            inside = [i for i in inside if not (i.type == pafs.FileType.Directory
                                                and _good_version(i.base_name))]
        if inside:
            raise SnapshotError(f"{target.display(target.root)} holds files but no snapshot; "
                                "refusing to replace it")


def _new_version(target: _Target) -> str:
    """The folder a version is written into: a ``-tmp-`` sibling, or a new version prefix."""
    if target.versioned:
        stamp = dt.datetime.now(dt.UTC).strftime(_STAMP)
        return _join(target.root, f"{VERSION_PREFIX}{stamp}-{uuid.uuid4().hex[:8]}")
    return target.sibling("tmp", f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _manifest_path(target: _Target, tmp: str) -> str:
    """Where the manifest of the version in ``tmp`` is written (last: it publishes)."""
    return _join(target.root, MANIFEST) if target.versioned else _join(tmp, MANIFEST)


def _stamp_version(target: _Target, tmp: str, manifest: dict[str, Any],
                   previous: Mapping[str, Any] | None, keep: int) -> None:
    """Record in ``manifest`` the version it publishes and the versions kept with it."""
    if not target.versioned:
        for key in ("version", "versions"):
            manifest.pop(key, None)
        return
    name = posixpath.basename(tmp)
    before = [v for v in (previous or {}).get("versions") or [] if _good_version(v)]
    manifest["version"] = name
    manifest["versions"] = [name, *[v for v in before if v != name]][:keep]


def _publish(target: _Target, tmp: str, manifest: Mapping[str, Any] | None = None,
             previous: Mapping[str, Any] | None = None) -> None:
    """Make the version in ``tmp`` the snapshot (its manifest is written, on object stores).

    On an object store the manifest written last is the publish; the versions it does not keep
    are then removed: those the previous manifest kept, and those of writers dead for
    :data:`STALE_SECONDS`.
    """
    root = target.root
    if target.versioned:
        kept = set((manifest or {}).get("versions") or ())
        known = set((previous or {}).get("versions") or ())
        try:
            infos = target.fs.get_file_info(pafs.FileSelector(root))
        except OSError:
            return
        for info in infos:
            name = info.base_name
            if info.type == pafs.FileType.Directory and _good_version(name) \
                    and name not in kept and (name in known or _stale_version(name)):
                with contextlib.suppress(OSError):
                    target.fs.delete_dir(info.path)
        return
    if target.exists(root):
        old = target.sibling("old", uuid.uuid4().hex[:8])
        target.fs.move(root, old)
        target.fs.move(tmp, root)
        with contextlib.suppress(OSError):
            target.fs.delete_dir(old)
    else:
        target.fs.create_dir(target.parent, recursive=True)
        target.fs.move(tmp, root)


def _stale_version(name: str) -> bool:
    """Whether a version folder was started more than :data:`STALE_SECONDS` ago."""
    try:
        started = dt.datetime.strptime(name[len(VERSION_PREFIX):].split("-", 1)[0], _STAMP)
    except ValueError:
        return False
    age = dt.datetime.now(dt.UTC) - started.replace(tzinfo=dt.UTC)
    return age.total_seconds() > STALE_SECONDS


def _checksum(fs: pafs.FileSystem, path: str) -> str:
    """``sha256:<hex>`` of a written file."""
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _carry(target: _Target, root: str, tmp: str, entry: Mapping[str, Any]) -> None:
    """Put a listed file of the version in ``root`` into the one being written in ``tmp``,
    without rewriting it.

    A hard link on a local disk (the previous version stays intact and readable: removing its
    folder after the publish only drops its names); a copy elsewhere (server-side on object
    stores). The file must arrive with the size the manifest records, or the write stops.
    """
    fs = target.fs
    source, dest = _join(root, entry["path"]), _join(tmp, entry["path"])
    fs.create_dir(posixpath.dirname(dest), recursive=True)
    if fs.get_file_info(dest).type != pafs.FileType.NotFound:
        raise SnapshotError(f"cannot carry {entry['path']} over: the new version already "
                            "holds a file of that name")
    linked = False
    if isinstance(fs, pafs.LocalFileSystem):
        with contextlib.suppress(OSError):  # no hard links here (some shares): copy instead
            os.link(source, dest)
            linked = True
    if not linked:
        try:
            fs.copy_file(source, dest)
        except FileNotFoundError:
            raise _damaged(target, root, entry["path"], "missing") from None
    size = fs.get_file_info(dest).size
    if entry.get("size") is not None and size != entry["size"]:
        raise _damaged(target, root, entry["path"],
                       f"{size} bytes, the manifest records {entry['size']}")


def _recover(target: _Target) -> None:
    """Put back a version stranded by a publish killed between its two renames."""
    if not target.versioned and not target.exists(target.root):
        old = [p for p in target.siblings("old") if target.is_complete(p)]
        if old:
            target.fs.move(old[-1], target.root)


def _clean_siblings(target: _Target) -> None:
    """Put back a version stranded by a killed publish; remove temp dirs of dead writers."""
    if target.versioned:  # versions of dead writers go after the next publish
        return
    _recover(target)
    for path in target.siblings("old"):
        with contextlib.suppress(OSError):
            target.fs.delete_dir(path)
    for path in target.siblings("tmp"):
        if _is_stale(target, path):
            with contextlib.suppress(OSError):
                target.fs.delete_dir(path)


def _is_stale(target: _Target, path: str) -> bool:
    tag = posixpath.basename(path).split(".jetti-tmp-", 1)[-1]
    parts = tag.rsplit("-", 2)  # <host>-<pid>-<random>
    if isinstance(target.fs, pafs.LocalFileSystem) and len(parts) == 3 \
            and parts[0] == socket.gethostname() and parts[1].isdigit():
        return not _pid_alive(int(parts[1]))
    mtime = target.fs.get_file_info(path).mtime
    return mtime is None or (time.time() - mtime.timestamp()) > STALE_SECONDS


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json(fs: pafs.FileSystem, path: str, data: Mapping[str, Any]) -> None:
    with fs.open_output_stream(path) as handle:
        handle.write(json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))
