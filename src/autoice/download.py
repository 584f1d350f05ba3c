"""Fetch the ready-to-train AI4Arctic dataset and lay it out as ``OUT/train`` and ``OUT/test``.

The archives are tens of GB over links that drop, so every step can be repeated: a download resumes
from its ``.part`` file with an HTTP range request, transient failures are retried with back-off, and
each file is checked against its published md5 before use (a mismatch is deleted and fetched once
more). The training archive comes in two parts that are read back to back straight into ``tarfile``'s
stream mode, so the joined archive never touches the disk. Each scene is written through
:func:`autoice.atomic.atomic_output`: a crash leaves no half scene under its final name, and a rerun
keeps the scenes already whole and skips splits whose official scenes are all present.

Where the files come from is a *source* (``resources/download_sources.json``): a URL pattern, the
files with their md5s, the split archives and the scenes expected. ``AUTOICE_DOWNLOAD_ENDPOINT``
(``--endpoint``) replaces the host, as ``HF_ENDPOINT`` does for the hub client; ``AUTOICE_DOWNLOAD_MANIFEST``
(``--manifest``) replaces the whole source with a JSON file of the same shape (mirrors, tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import re
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, TypeVar

from autoice import __version__, schema
from autoice.atomic import atomic_output, ensure_folder, require_space, write_error
from autoice.errors import ConfigError, DownloadError

ENDPOINT_ENV = "AUTOICE_DOWNLOAD_ENDPOINT"  #: replaces the source's host (like HF_ENDPOINT)
MANIFEST_ENV = "AUTOICE_DOWNLOAD_MANIFEST"  #: a JSON file replacing the packaged source definition
SPLITS: tuple[str, ...] = ("train", "test")
DOWNLOADS = "downloads"  #: OUT/downloads: archives and their .part files until extracted
SOURCES: tuple[str, ...] = ("hf", "dtu")
#: why --source dtu is refused: the brief's rule is to fetch only what we can verify
DTU_MISSING = (
    "the DTU source is not implemented: for DTU's data repository (ready-to-train articles 21316608 and 21762830 "
    "of doi:10.11583/DTU.c.6244065) no file list with checksums was found that autoice could verify against; "
    "use --source hf, or download from DTU yourself and lay the files out as the README shows"
)
_CHUNK = 1 << 20
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_T = TypeVar("_T")


# ----------------------------------------------------------------------------- the source
@dataclass(frozen=True)
class Source:
    """Where the dataset's files are and what they must be."""

    name: str
    endpoint: str
    url: str  #: pattern with ``{endpoint}`` and ``{name}``
    md5: dict[str, str]
    splits: dict[str, tuple[str, ...]]  #: split -> its archive parts, in order
    metadata: str | None = None  #: a small index file kept as OUT/<name>
    extracted_bytes: dict[str, int] = field(default_factory=dict)  #: estimates for the space check
    scenes: dict[str, frozenset[str]] = field(default_factory=dict)  #: split -> file names expected in OUT/split

    def url_of(self, name: str) -> str:
        """The URL of one of the source's files."""
        return self.url.format(endpoint=self.endpoint.rstrip("/"), name=urllib.parse.quote(name))


def official_files() -> dict[str, frozenset[str]]:
    """The file names of the official scenes: 512 ``train/*_prep.nc``, 20 test scenes with references."""
    train = frozenset(schema.parse_scene_key(k).rtt_name for k in schema.official_scenes()["dataset"])
    test_names = [schema.parse_raw_name(n) for n in schema.official_test_scenes()]
    test = frozenset(n for s in test_names if s is not None for n in (s.rtt_name, s.reference_name))
    return {"train": train, "test": test}


def _check_endpoint(endpoint: str, where: str) -> str:
    try:
        parts = urllib.parse.urlsplit(endpoint)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (raises ValueError for a port that is not 0-65535)
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{where}: {endpoint!r} is not an http(s) URL with a host (e.g. https://huggingface.co)")
    return endpoint


def load_source(source: str = "hf", *, manifest: str | os.PathLike[str] | None = None,
                endpoint: str | None = None) -> Source:  # fmt: skip
    """The source to fetch from: the packaged definition, or ``manifest``'s, with ``endpoint`` as its host."""
    if source == "dtu":
        raise ConfigError(DTU_MISSING)
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    if manifest is not None and str(manifest) != "":
        where = str(manifest)
        try:
            raw = json.loads(Path(manifest).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read this manifest: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise ConfigError(f"{where}: not a JSON manifest: {exc}") from exc
    else:
        where = "autoice/resources/download_sources.json"
        raw = json.loads(resources.files("autoice.resources").joinpath("download_sources.json").read_text())
        raw = raw[source]
    return _parse_source(source, raw, where, endpoint)


def _parse_source(name: str, raw: Any, where: str, endpoint: str | None) -> Source:
    """Validate a source definition; every fault is one ConfigError naming the manifest."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a manifest is a JSON object with 'url', 'md5' and 'splits'")
    missing = [k for k in ("url", "md5", "splits") if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    url, md5, splits = raw["url"], raw["md5"], raw["splits"]
    try:
        usable = isinstance(url, str) and "{name}" in url and bool(url.format(endpoint="http://h", name="f"))
    except (KeyError, IndexError, ValueError):
        usable = False
    if not usable:
        raise ConfigError(f"{where}: 'url' must be a string with {{name}} (and usually {{endpoint}}), no other "
                          f"braces")  # fmt: skip
    if not isinstance(md5, dict) or not all(isinstance(k, str) and isinstance(v, str) and _MD5.match(v.lower())
                                            for k, v in md5.items()):  # fmt: skip
        raise ConfigError(f"{where}: 'md5' must map each file name to 32 hexadecimal digits")
    md5 = {k: v.lower() for k, v in md5.items()}
    if not isinstance(splits, dict) or not splits or not set(splits) <= set(SPLITS) or not all(
            isinstance(v, list) and v and all(isinstance(p, str) for p in v) for v in splits.values()):  # fmt: skip
        raise ConfigError(f"{where}: 'splits' must map 'train' and/or 'test' to lists of archive names")
    metadata = raw.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        raise ConfigError(f"{where}: 'metadata' must be a file name")
    files = [p for v in splits.values() for p in v] + ([metadata] if metadata else [])
    for f in files:
        if f not in md5:
            raise ConfigError(f"{where}: no md5 for {f!r}: autoice uses no file it cannot verify")
        if f != PurePosixPath(f).name or f in ("", ".", ".."):
            raise ConfigError(f"{where}: {f!r} is not a plain file name")
    sizes = raw.get("extracted_bytes", {})
    if not isinstance(sizes, dict) or not all(isinstance(v, int) and v >= 0 for v in sizes.values()):
        raise ConfigError(f"{where}: 'extracted_bytes' must map splits to byte counts")
    scenes_raw = raw.get("scenes", "official")
    if scenes_raw == "official":
        scenes = official_files()
    elif isinstance(scenes_raw, dict) and all(
            isinstance(v, list) and all(isinstance(n, str) and schema.parse_rtt_name(n) for n in v)
            for v in scenes_raw.values()):  # fmt: skip
        scenes = {k: frozenset(v) for k, v in scenes_raw.items()}
    else:
        raise ConfigError(f"{where}: 'scenes' must be \"official\" or map splits to *_prep.nc / "
                          f"*_prep_reference.nc names")  # fmt: skip
    unlisted = [k for k in splits if not scenes.get(k)]
    if unlisted:
        raise ConfigError(f"{where}: 'scenes' lists nothing for {', '.join(unlisted)}: without a list a split "
                          f"can never be found complete")  # fmt: skip
    chosen = endpoint if endpoint is not None else raw.get("endpoint", "")
    if not isinstance(chosen, str):
        raise ConfigError(f"{where}: 'endpoint' must be a URL")
    if "{endpoint}" in url:
        _check_endpoint(chosen, f"the endpoint (--endpoint, {ENDPOINT_ENV})" if endpoint is not None else where)
    else:
        _check_endpoint(url.format(name="x"), where)
    return Source(name, chosen, url, md5, {k: tuple(v) for k, v in splits.items()}, metadata,
                  dict(sizes), scenes)  # fmt: skip


# ----------------------------------------------------------------------------- HTTP with resume and retries
class _Transient(Exception):
    """A failure worth retrying: the connection dropped, timed out, or the server is busy (5xx, 429)."""


@dataclass
class Fetcher:
    """HTTP GETs with range resume, retries with exponential back-off and md5 checks."""

    retries: int = 5
    backoff_s: float = 1.0  #: first wait; doubles each failure in a row, at most ``max_backoff_s``
    max_backoff_s: float = 60.0
    timeout_s: float = 60.0
    progress: bool = True
    sleep: Callable[[float], None] = time.sleep
    downloaded: int = 0  #: bytes received in this run

    def _open(self, url: str, *, method: str = "GET", start: int = 0) -> http.client.HTTPResponse:
        headers = {"User-Agent": f"autoice/{__version__}", "Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        request = urllib.request.Request(url, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout_s)  # noqa: S310 (http(s) checked)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and start:
                raise
            if exc.code in (408, 425, 429) or exc.code >= 500:
                raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
            what = "not found on the server" if exc.code == 404 else "refused by the server"
            raise DownloadError(url, f"{what} (HTTP {exc.code} {exc.reason})") from exc
        except urllib.error.URLError as exc:
            raise _Transient(str(getattr(exc.reason, "strerror", None) or exc.reason)) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc

    def _retrying(self, url: str, attempt: Callable[[], _T], progressed: Callable[[], bool] = lambda: False) -> _T:
        """Run ``attempt`` until it succeeds; a transient failure waits and retries.

        The count restarts whenever an attempt made progress, so a long download over a flaky link finishes.
        """
        failures = 0
        while True:
            try:
                return attempt()
            except _Transient as exc:
                failures = 1 if progressed() else failures + 1
                if failures > self.retries:
                    tries = f"{self.retries + 1} attempt{'s' if self.retries else ''}"
                    raise DownloadError(url, f"download failed after {tries}: {exc}") from exc
                self.sleep(min(self.backoff_s * 2 ** (failures - 1), self.max_backoff_s))

    def size(self, url: str) -> int | None:
        """The file's size from a HEAD request (None when the server does not say)."""

        def attempt() -> int | None:
            with self._open(url, method="HEAD") as resp:
                length = resp.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else None

        return self._retrying(url, attempt)

    def fetch(self, url: str, dest: Path, md5: str, *, label: str | None = None) -> Path:
        """Download ``url`` to ``dest`` through ``dest.part`` (resumed), verified against ``md5``.

        A complete file with the wrong checksum is deleted and downloaded once more; a second mismatch
        is a :class:`DownloadError` naming the file. ``dest`` appears only once verified.
        """
        part = dest.with_name(dest.name + ".part")
        label = label or dest.name
        for round_ in (1, 2):
            digest = self._download(url, part, label)
            if digest == md5:
                try:
                    os.replace(part, dest)
                except OSError as exc:
                    raise write_error(dest, exc) from exc
                return dest
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
            if round_ == 2:
                raise DownloadError(dest.name, f"checksum mismatch after downloading it twice: md5 {digest}, "
                                               f"expected {md5} (the file was deleted)")  # fmt: skip
            print(f"autoice: {dest.name}: checksum mismatch (md5 {digest}, expected {md5}); deleted, "
                  f"downloading it again", file=sys.stderr)  # fmt: skip
        raise AssertionError("unreachable")

    def _download(self, url: str, part: Path, label: str) -> str:
        """Complete ``part`` from ``url`` (resuming what is there) and return its md5."""
        from tqdm import tqdm

        state = {"have": 0, "before": 0}
        digest = hashlib.md5()
        if part.exists():
            with open(part, "rb") as fh:  # the bytes already there count towards the checksum
                for chunk in iter(lambda: fh.read(_CHUNK), b""):
                    digest.update(chunk)
                    state["have"] += len(chunk)
        bar = tqdm(desc=label, unit="B", unit_scale=True, unit_divisor=1024, initial=state["have"],
                   disable=not self.progress, file=sys.stderr, leave=False)  # fmt: skip

        def restart() -> None:
            nonlocal digest
            digest = hashlib.md5()
            state["have"] = 0
            bar.reset()

        def attempt() -> None:
            state["before"] = state["have"]
            try:
                resp = self._open(url, start=state["have"])
            except urllib.error.HTTPError as exc:  # 416: nothing left after our offset
                total = _total_from_range(exc.headers.get("Content-Range", ""))
                if total is not None and total == state["have"]:
                    return
                restart()
                with contextlib.suppress(FileNotFoundError):
                    part.unlink()
                raise _Transient(f"the server refused to resume at byte {state['have']}") from exc
            with resp:
                total = None
                if state["have"] and resp.status == 206:
                    start = _start_from_range(resp.headers.get("Content-Range", ""))
                    if start != state["have"]:
                        restart()
                        raise _Transient("the server resumed at another byte than asked")
                    total = _total_from_range(resp.headers.get("Content-Range", ""))
                elif state["have"]:  # 200: the server ignored the range; start again
                    restart()
                if total is None:
                    length = resp.headers.get("Content-Length")
                    total = state["have"] + int(length) if length and length.isdigit() else None
                bar.total = total
                bar.refresh()
                self._stream(resp, part, append=state["have"] > 0, digest=digest, state=state, bar=bar)
            if total is not None and state["have"] < total:
                raise _Transient(f"the connection closed after {state['have']:,} of {total:,} bytes")

        try:
            self._retrying(url, attempt, progressed=lambda: state["have"] > state["before"])
        finally:
            bar.close()
        return digest.hexdigest()

    def _stream(self, resp: http.client.HTTPResponse, part: Path, *, append: bool, digest: Any,
                state: dict[str, int], bar: Any) -> None:  # fmt: skip
        ensure_folder(part.parent)
        try:
            out = open(part, "ab" if append else "wb")  # noqa: SIM115 (closed below, errors told apart)
        except OSError as exc:
            raise write_error(part, exc) from exc
        with out:
            while True:
                try:
                    chunk = resp.read1(_CHUNK)  # what has arrived: a slow link still makes progress
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"{type(exc).__name__}: {exc}") from exc
                if not chunk:
                    return
                try:
                    out.write(chunk)
                    out.flush()
                except OSError as exc:
                    raise write_error(part, exc) from exc
                digest.update(chunk)
                state["have"] += len(chunk)
                self.downloaded += len(chunk)
                bar.update(len(chunk))


def _total_from_range(value: str) -> int | None:
    m = re.match(r"^bytes\s+(?:\d+-\d+|\*)/(\d+)$", value.strip())
    return int(m[1]) if m else None


def _start_from_range(value: str) -> int | None:
    m = re.match(r"^bytes\s+(\d+)-\d+/(?:\d+|\*)$", value.strip())
    return int(m[1]) if m else None


# ----------------------------------------------------------------------------- extraction
class _Joined(io.RawIOBase):
    """Archive parts read back to back as one stream (``cat aa ab``) without writing the joined file."""

    def __init__(self, parts: Sequence[Path]) -> None:
        self._parts = list(parts)
        self._fh: BinaryIO | None = None
        self.consumed = 0

    def readable(self) -> bool:  # noqa: D102
        return True

    def readinto(self, buffer: Any) -> int:  # noqa: D102
        view = memoryview(buffer)
        while True:
            if self._fh is None:
                if not self._parts:
                    return 0
                self._fh = open(self._parts.pop(0), "rb")  # noqa: SIM115 (closed when exhausted)
            n = self._fh.readinto(view)
            if n:
                self.consumed += n
                return n
            self._fh.close()
            self._fh = None

    def close(self) -> None:  # noqa: D102
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        super().close()


@dataclass
class Extracted:
    """What one archive gave."""

    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def extract(parts: Sequence[Path], folder: Path, *, progress: bool = True, label: str = "extracting") -> Extracted:
    """Stream the scenes of a (split) gzip tar archive into ``folder``, each one atomically.

    Only regular files named like a scene (``*_prep.nc``, ``*_prep_reference.nc``) are written, under
    their base name, so no member can land outside ``folder``. A scene already there with the member's
    size is kept (a rerun after an interruption writes only what is missing).
    """
    from tqdm import tqdm

    ensure_folder(folder)
    result = Extracted()
    total = sum(p.stat().st_size for p in parts)
    joined = _Joined(parts)
    bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
               file=sys.stderr, leave=False)  # fmt: skip
    shown = 0
    try:
        with io.BufferedReader(joined, _CHUNK) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if not member.isfile() or schema.parse_rtt_name(name) is None:
                    if not member.isdir():
                        result.ignored.append(member.name)
                    continue
                dest = folder / name
                if dest.is_file() and dest.stat().st_size == member.size:
                    result.kept.append(name)
                else:
                    require_space(folder, member.size, name)
                    source = tar.extractfile(member)
                    with atomic_output(dest) as tmp:
                        _copy(source, tmp, member.size, dest)
                    result.written.append(name)
                bar.update(joined.consumed - shown)
                shown = joined.consumed
    except (tarfile.TarError, zlib.error, EOFError) as exc:
        names = ", ".join(p.name for p in parts)
        raise DownloadError(names, f"damaged archive although its checksum matched ({type(exc).__name__}: {exc}); "
                                   f"kept in {parts[0].parent}: delete it to download it again") from exc  # fmt: skip
    finally:
        bar.close()
    return result


def _copy(source: BinaryIO | None, tmp: Path, size: int, dest: Path) -> None:
    if source is None:
        raise DownloadError(dest, "the archive member has no data")
    copied = 0
    try:
        with open(tmp, "wb") as out:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                out.write(chunk)
                copied += len(chunk)
    except OSError as exc:
        raise write_error(dest, exc) from exc
    if copied != size:
        raise DownloadError(dest, f"the archive ended inside this scene ({copied} of {size} bytes)")


# ----------------------------------------------------------------------------- the whole job
@dataclass
class SplitReport:
    """What happened to one split."""

    split: str
    folder: Path
    expected: int
    complete_before: bool = False
    fetched: list[str] = field(default_factory=list)
    written: int = 0
    kept: int = 0
    extra: list[str] = field(default_factory=list)
    archives_kept: bool = False


@dataclass
class DownloadReport:
    """The run's outcome: per split, and the bytes received."""

    out: Path
    splits: list[SplitReport]
    metadata: str | None = None
    downloaded_bytes: int = 0

    @property
    def nothing_done(self) -> bool:
        """True when every split was complete already and nothing was received."""
        return self.downloaded_bytes == 0 and all(s.complete_before for s in self.splits)


def missing_scenes(folder: Path, expected: frozenset[str]) -> list[str]:
    """The expected scene files that ``folder`` lacks."""
    return sorted(n for n in expected if not (folder / n).is_file())


def extra_scenes(folder: Path, expected: frozenset[str]) -> list[str]:
    """Scene files in ``folder`` that the list does not name."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if schema.parse_rtt_name(p.name) and p.name not in expected)


def _listing(names: Sequence[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def download(out: str | os.PathLike[str], *, splits: Sequence[str] = SPLITS, source: Source | None = None,
             keep_archives: bool = False, fetcher: Fetcher | None = None) -> DownloadReport:  # fmt: skip
    """Fetch, verify and extract ``splits`` of ``source`` into ``out``; a complete split is left alone.

    Free space for the remaining archive bytes plus the estimated extracted size is checked before any
    download. Raises :class:`DownloadError` when a file cannot be fetched or verified, or when an
    extracted split lacks scenes of the list (its archives are then kept).
    """
    out = Path(out)
    source = source or load_source()
    fetcher = fetcher or Fetcher()
    unknown = [s for s in splits if s not in source.splits]
    if unknown:
        raise ConfigError(f"the source has no {', '.join(unknown)} split (it has {', '.join(source.splits)})")
    ensure_folder(out)
    downloads = out / DOWNLOADS
    reports = []
    todo = []
    for split in splits:
        folder = out / split
        expected = source.scenes.get(split, frozenset())
        rep = SplitReport(split, folder, len(expected))
        rep.complete_before = bool(expected) and not missing_scenes(folder, expected)
        rep.extra = extra_scenes(folder, expected)
        reports.append(rep)
        if not rep.complete_before:
            todo.append(rep)
    metadata_dest = out / source.metadata if source.metadata else None
    need_metadata = metadata_dest is not None and not metadata_dest.is_file()
    report = DownloadReport(out, reports, source.metadata)
    if not todo and not need_metadata:
        return report

    _check_space(out, todo, source, fetcher, keep_archives)
    if need_metadata:
        fetcher.fetch(source.url_of(source.metadata), _ensure(downloads) / source.metadata,
                      source.md5[source.metadata])  # fmt: skip
        try:
            os.replace(downloads / source.metadata, metadata_dest)
        except OSError as exc:
            raise write_error(metadata_dest, exc) from exc
    for rep in todo:
        parts = []
        for name in source.splits[rep.split]:
            dest = downloads / name
            if not dest.is_file():
                fetcher.fetch(source.url_of(name), _ensure(downloads) / name, source.md5[name])
                rep.fetched.append(name)
            parts.append(dest)
        got = extract(parts, rep.folder, progress=fetcher.progress, label=f"extracting {rep.split}")
        rep.written, rep.kept = len(got.written), len(got.kept)
        expected = source.scenes.get(rep.split, frozenset())
        missing = missing_scenes(rep.folder, expected)
        rep.extra = extra_scenes(rep.folder, expected)
        if missing:
            raise DownloadError(rep.folder, f"{len(missing)} of {len(expected)} scenes of the list are not in "
                                            f"the archive: {_listing(missing)} (archives kept in {downloads})")
        rep.archives_kept = keep_archives
        if not keep_archives:
            for p in parts:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
    with contextlib.suppress(OSError):
        downloads.rmdir()  # only when empty
    report.downloaded_bytes = fetcher.downloaded
    return report


def _ensure(folder: Path) -> Path:
    ensure_folder(folder)
    return folder


def _check_space(out: Path, todo: Sequence[SplitReport], source: Source, fetcher: Fetcher, keep: bool) -> None:
    """Refuse before downloading when the disk cannot hold the archives plus the extracted scenes.

    Archives are sized by HEAD requests (less what is already here); extracted sizes are the source's
    estimates less the scenes already in place. Splits run one after the other and drop their archives
    unless kept, so the need is the peak of that sequence.
    """
    downloads = out / DOWNLOADS
    need = held = 0
    lines = []
    for rep in todo:
        archive = 0
        for name in source.splits[rep.split]:
            if (downloads / name).is_file():
                continue
            size = fetcher.size(source.url_of(name)) or 0
            part = downloads / (name + ".part")
            archive += max(0, size - (part.stat().st_size if part.is_file() else 0))
        present = sum((rep.folder / n).stat().st_size for n in source.scenes.get(rep.split, ())
                      if (rep.folder / n).is_file())  # fmt: skip
        extracted = max(0, source.extracted_bytes.get(rep.split, 0) - present)
        need = max(need, held + archive + extracted)
        held += extracted + (archive if keep else 0)
        lines.append(f"{rep.split}: {archive / 2**20:,.0f} MiB to download + ~{extracted / 2**20:,.0f} MiB "
                     f"extracted")  # fmt: skip
    require_space(out, need, "; ".join(lines))


def describe(report: DownloadReport) -> Iterator[str]:
    """The run's summary, one line per split."""
    for s in report.splits:
        if s.complete_before:
            line = f"{s.split}: all {s.expected} scenes present in {s.folder}, nothing to do"
        else:
            got = f"downloaded {', '.join(s.fetched)}; " if s.fetched else ""
            line = (f"{s.split}: {s.expected} scenes in {s.folder} ({got}extracted {s.written}"
                    + (f", kept {s.kept} already there" if s.kept else "") + ")"
                    + (f"; archives kept in {report.out / DOWNLOADS}" if s.archives_kept else ""))  # fmt: skip
        yield line

