"""Issue 14: ``autoice download`` against a local HTTP host with fault injection.

The real host (the Hugging Face Hub) is not reachable from our machines, so the client runs here, unpatched,
against a ``ThreadingHTTPServer`` on 127.0.0.1 that serves archives of synthetic scenes under the real file
names and URL layout, honours Range requests and can drop a connection, corrupt a byte, answer 404, redirect
or ignore a range. The client is pointed at it only through ``AUTOICE_DOWNLOAD_ENDPOINT``; the test archives'
md5s reach it through ``AUTOICE_DOWNLOAD_MANIFEST``, the same manifest mechanism as the published ones.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from autoice import download as dl
from autoice import schema
from autoice.cli.main import main

PREFIX = "/datasets/torchgeo/ai4artic-sea-ice-challenge/resolve/main/"
SHARED = Path(__file__).resolve().parents[2] / "shared"


# ----------------------------------------------------------------------------- the local host
class Host:
    """Files served under the hub's URL layout; ``faults[name]`` is a list of faults, one used per GET."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.faults: dict[str, list[tuple]] = {}
        self.missing: set[str] = set()
        self.release = threading.Event()
        self.log: list[tuple[str, str, str | None]] = []  # (method, name, Range header)
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                path = self.path
                if path.startswith("/cdn/"):  # where a redirect points, as the hub's LFS files do
                    name = path[len("/cdn/"):]
                elif path.startswith(PREFIX):
                    name = path[len(PREFIX):]
                else:
                    name = None
                host.log.append(("HEAD" if head else "GET", name or path, self.headers.get("Range")))
                if name is None or name in host.missing or name not in host.files:
                    self.send_error(404)
                    return
                fault = ()
                if not head and host.faults.get(name):
                    fault = host.faults[name].pop(0)
                if fault and fault[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"/cdn/{name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault and fault[0] == "error":
                    self.send_error(fault[1])
                    return
                data = host.files[name]
                start = 0
                m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if m and not (fault and fault[0] == "ignore-range"):
                    start = int(m[1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if head:
                    return
                if fault and fault[0] == "corrupt":
                    body = bytearray(body)
                    body[fault[1]] ^= 0xFF
                if fault and fault[0] == "stall":  # send part of the body, then wait (a slow link)
                    self.wfile.write(bytes(body[: fault[1]]))
                    self.wfile.flush()
                    host.release.wait(20)
                    with contextlib.suppress(OSError):
                        self.wfile.write(bytes(body[fault[1]:]))
                    return
                if fault and fault[0] == "drop":  # send part of the body, then hang up
                    self.wfile.write(bytes(body[: fault[1]]))
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(bytes(body))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def gets(self, name: str | None = None) -> list[tuple[str, str, str | None]]:
        return [e for e in self.log if e[0] == "GET" and (name is None or e[1] == name)]

    def __enter__(self) -> Host:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------- archives like the real ones
def _tar_gz(folder: Path, arcdir: str, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=arcdir, recursive=False)
        for f in sorted(folder.glob("*.nc")):
            tar.add(f, arcname=f"{arcdir}/{f.name}")
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def dataset(synth_data):
    """The hub's four files made from the synthetic scenes: metadata.csv, train.tar.gzaa/ab, test.tar.gz."""
    train = _tar_gz(synth_data / "train", "train", {"train/README.txt": b"not a scene\n"})
    test = _tar_gz(synth_data / "test", "test")
    half = len(train) // 2
    names = sorted(p.name for p in (synth_data / "train").glob("*_prep.nc"))
    tests = sorted(p.name for p in (synth_data / "test").glob("*.nc"))
    rows = ["input_path,reference_path,split"] + [f"train/{n},,train" for n in names]
    metadata = ("\n".join(rows) + "\n").encode()
    files = {"metadata.csv": metadata, "train.tar.gzaa": train[:half], "train.tar.gzab": train[half:],
             "test.tar.gz": test}  # fmt: skip
    sizes = {s: sum(p.stat().st_size for p in (synth_data / s).glob("*.nc")) for s in ("train", "test")}
    return {"files": files, "scenes": {"train": names, "test": tests}, "sizes": sizes, "root": synth_data}


def _manifest(path: Path, dataset: dict, **change) -> Path:
    """The packaged hf definition with the test archives' md5s, sizes and scene list (what a mirror would ship)."""
    from importlib import resources

    raw = json.loads(resources.files("autoice.resources").joinpath("download_sources.json").read_text())["hf"]
    raw["md5"] = {n: hashlib.md5(d).hexdigest() for n, d in dataset["files"].items()}
    raw["extracted_bytes"] = dataset["sizes"]
    raw["scenes"] = dataset["scenes"]
    raw.update(change)
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture
def host(dataset, tmp_path, monkeypatch):
    with Host(dataset["files"]) as h:
        monkeypatch.setenv(dl.ENDPOINT_ENV, h.url)
        monkeypatch.setenv(dl.MANIFEST_ENV, str(_manifest(tmp_path / "manifest.json", dataset)))
        yield h


def _cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


def _one_error(err: str) -> str:
    assert "Traceback" not in err, err
    errors = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("autoice: error:")]
    assert len(errors) == 1, err
    return errors[0]


def _temporaries(root: Path) -> list[str]:
    return glob.glob(str(root / "**" / ".*.tmp"), recursive=True)


def _same_as_source(out: Path, dataset: dict, splits=("train", "test")) -> None:
    for split in splits:
        names = sorted(p.name for p in (out / split).iterdir())
        assert names == dataset["scenes"][split], (split, names)
        for n in names:
            assert (out / split / n).read_bytes() == (dataset["root"] / split / n).read_bytes(), n


# ----------------------------------------------------------------------------- the tests
def test_download_lays_out_the_readme_layout_and_a_second_run_does_nothing(host, dataset, tmp_path, capsys):
    out = tmp_path / "ai4arctic"
    code, stdout, err = _cli(["download", out, "--quiet"], capsys)
    assert code == 0, err
    _same_as_source(out, dataset)
    assert (out / "metadata.csv").read_bytes() == dataset["files"]["metadata.csv"]
    assert not (out / "downloads").exists()  # archives deleted once extracted (no --keep-archives)
    assert sorted(p.name for p in out.iterdir()) == ["metadata.csv", "test", "train"]
    assert f"train: {len(dataset['scenes']['train'])} scenes in {out / 'train'}" in stdout
    assert "README.txt" not in str(list(out.rglob("*")))
    got = {e[1] for e in host.gets()}
    assert got == {"metadata.csv", "train.tar.gzaa", "train.tar.gzab", "test.tar.gz"}
    assert all(e[2] is None for e in host.gets())  # nothing to resume
    assert _temporaries(out) == []

    host.log.clear()
    code, stdout, err = _cli(["download", out, "--quiet"], capsys)
    assert code == 0, err
    assert host.log == []  # a complete OUT is checked on disk; the host is not even asked
    assert "nothing to do" in stdout and "nothing downloaded" in stdout
    _same_as_source(out, dataset)


def test_split_and_keep_archives(host, dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = _cli(["download", out, "--split", "test", "--keep-archives", "--quiet"], capsys)
    assert code == 0, err
    _same_as_source(out, dataset, ["test"])
    assert not (out / "train").exists()
    assert {e[1] for e in host.gets()} == {"metadata.csv", "test.tar.gz"}
    assert sorted(p.name for p in (out / "downloads").iterdir()) == ["test.tar.gz"]
    assert (out / "downloads" / "test.tar.gz").read_bytes() == dataset["files"]["test.tar.gz"]
    assert "archives kept" in stdout


def test_a_dropped_connection_is_resumed_with_a_range_request(host, dataset, tmp_path, capsys):
    host.faults["train.tar.gzaa"] = [("drop", 5000)]
    host.faults["test.tar.gz"] = [("redirect",), ("drop", 777)]  # the hub redirects to its file store
    out = tmp_path / "out"
    code, stdout, err = _cli(["download", out, "--keep-archives", "--quiet"], capsys)
    assert code == 0, err
    assert [e[2] for e in host.gets("train.tar.gzaa")] == [None, "bytes=5000-"]
    # the parts were streamed into the extraction: no joined train.tar.gz was written
    assert sorted(p.name for p in (out / "downloads").iterdir()) == ["test.tar.gz", "train.tar.gzaa",
                                                                     "train.tar.gzab"]  # fmt: skip
    assert [e[2] for e in host.gets("test.tar.gz")] == [None, None, "bytes=777-"]
    _same_as_source(out, dataset)


def test_a_part_file_left_by_an_earlier_run_is_resumed(host, dataset, tmp_path, capsys):
    """Without retries the run fails and keeps its .part; the next run continues from there."""
    host.faults["train.tar.gzab"] = [("drop", 1234)]
    out = tmp_path / "out"
    code, _, err = _cli(["download", out, "--split", "train", "--retries", "0", "--quiet"], capsys)
    line = _one_error(err)
    assert code == 1 and "train.tar.gzab" in line and "closed after 1,234 of" in line, line
    assert (out / "downloads" / "train.tar.gzab.part").stat().st_size == 1234
    assert (out / "downloads" / "train.tar.gzaa").is_file()  # verified and kept for the next run
    assert not (out / "train").exists()
    host.log.clear()
    code, _, err = _cli(["download", out, "--split", "train", "--quiet"], capsys)
    assert code == 0, err
    assert [(e[1], e[2]) for e in host.gets()] == [("train.tar.gzab", "bytes=1234-")]
    _same_as_source(out, dataset, ["train"])


def test_retries_count_again_after_progress_and_show_a_byte_progress_bar(host, dataset, tmp_path, capsys):
    """Three drops, each after some bytes, with one retry allowed: progress restarts the count."""
    host.faults["test.tar.gz"] = [("drop", 1000)] * 3
    out = tmp_path / "out"
    code, _, err = _cli(["download", out, "--split", "test", "--retries", "1"], capsys)
    assert code == 0, err
    assert [e[2] for e in host.gets("test.tar.gz")] == [None, "bytes=1000-", "bytes=2000-", "bytes=3000-"]
    assert re.search(r"test\.tar\.gz: .*\d+(\.\d+)?[kMG]?B/", err), err  # tqdm in bytes, on stderr
    _same_as_source(out, dataset, ["test"])


def test_back_off_doubles_up_to_its_cap(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/x"
    waits: list[float] = []
    fetcher = dl.Fetcher(retries=5, backoff_s=1.0, max_backoff_s=5.0, progress=False, sleep=waits.append)
    with pytest.raises(dl.DownloadError, match="download failed after 6 attempts"):
        fetcher.fetch(url, tmp_path / "x", "0" * 32)
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert list(tmp_path.iterdir()) == []


def test_a_complete_part_is_verified_after_a_416(host, dataset, tmp_path, capsys):
    """Killed after the last byte but before the rename: the server has nothing more (416); md5 decides."""
    out = tmp_path / "out"
    (out / "downloads").mkdir(parents=True)
    whole = dataset["files"]["test.tar.gz"]
    (out / "downloads" / "test.tar.gz.part").write_bytes(whole)
    code, _, err = _cli(["download", out, "--split", "test", "--quiet"], capsys)
    assert code == 0, err
    assert [e[2] for e in host.gets("test.tar.gz")] == [f"bytes={len(whole)}-"]
    _same_as_source(out, dataset, ["test"])


def test_a_server_that_ignores_the_range_is_downloaded_again_from_the_start(host, dataset, tmp_path, capsys):
    host.faults["test.tar.gz"] = [("drop", 100), ("ignore-range",)]
    out = tmp_path / "out"
    code, _, err = _cli(["download", out, "--split", "test", "--quiet"], capsys)
    assert code == 0, err
    _same_as_source(out, dataset, ["test"])


def test_a_corrupted_byte_fails_the_checksum_and_is_fetched_once_more(host, dataset, tmp_path, capsys):
    host.faults["test.tar.gz"] = [("corrupt", 500)]
    out = tmp_path / "out"
    code, _, err = _cli(["download", out, "--split", "test", "--quiet"], capsys)
    assert code == 0, err
    assert "test.tar.gz: checksum mismatch" in err and "downloading it again" in err
    assert [e[2] for e in host.gets("test.tar.gz")] == [None, None]  # the second one from byte 0
    _same_as_source(out, dataset, ["test"])


def test_a_file_corrupted_twice_is_an_error_naming_it(host, tmp_path, capsys):
    host.faults["train.tar.gzab"] = [("corrupt", 10), ("corrupt", 99)]
    out = tmp_path / "out"
    code, _, err = _cli(["download", out, "--quiet"], capsys)
    line = _one_error(err)
    assert code == 1 and line.startswith("autoice: error: train.tar.gzab: checksum mismatch"), line
    assert not (out / "downloads" / "train.tar.gzab").exists()
    assert not (out / "downloads" / "train.tar.gzab.part").exists()  # deleted, not left to be trusted
    assert not (out / "train").exists()


def test_a_missing_part_fails_before_any_download(host, tmp_path, capsys):
    host.missing.add("train.tar.gzab")
    out = tmp_path / "out"
    code, _, err = _cli(["download", out, "--quiet"], capsys)
    line = _one_error(err)
    assert code == 1 and "train.tar.gzab: not found on the server (HTTP 404" in line, line
    assert host.gets() == []  # found out by the size check, before a byte was downloaded
    assert not (out / "train").exists()


def test_server_errors_are_retried(host, dataset, tmp_path, capsys):
    host.faults["test.tar.gz"] = [("error", 503), ("error", 500)]
    out = tmp_path / "out"
    code, _, err = _cli(["download", out, "--split", "test", "--quiet"], capsys)
    assert code == 0, err
    assert len(host.gets("test.tar.gz")) == 3
    host.faults["metadata.csv"] = [("error", 503)] * 3
    code, _, err = _cli(["download", tmp_path / "other", "--split", "test", "--retries", "1", "--quiet"], capsys)
    line = _one_error(err)
    assert code == 1 and "metadata.csv: download failed after 2 attempts: HTTP 503" in line, line


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_disk_too_small_is_refused_before_downloading(host, dataset, tmp_path, capsys):
    """A real 256 KiB file system: archives + extracted scenes do not fit; nothing is fetched."""
    total = sum(len(d) for d in dataset["files"].values())
    assert total > 2 * 256 * 1024
    with _tmpfs(tmp_path / "small", "256k") as disk:
        code, _, err = _cli(["download", disk / "out", "--quiet"], capsys)
        line = _one_error(err)
        assert code == 1 and "not enough free space" in line and str(disk / "out") in line, line
        assert host.gets() == []
        assert _temporaries(disk) == []


def test_a_disk_that_fills_up_during_the_download_is_one_line(host, dataset, tmp_path, capsys, monkeypatch):
    """The free-space figure lies (quota, another writer): the write's ENOSPC becomes one output error."""
    from autoice import atomic

    real = shutil.disk_usage
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 40))
    with _tmpfs(tmp_path / "small", "256k") as disk:
        code, _, err = _cli(["download", disk / "out", "--quiet"], capsys)
        line = _one_error(err)
        assert code == 1 and "no space left on the device" in line and str(disk / "out") in line, line
        assert _temporaries(disk) == []


def test_the_space_check_counts_archives_and_extracted_scenes(host, dataset, tmp_path, capsys, monkeypatch):
    """Without a mount: the check refuses when free < archives + extracted, and passes with just enough."""
    from autoice import atomic

    files = dataset["files"]
    need = len(files["test.tar.gz"]) + dataset["sizes"]["test"]
    real = shutil.disk_usage
    free = {"bytes": need - 1}
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda p: real(p)._replace(free=free["bytes"]))
    code, _, err = _cli(["download", tmp_path / "out", "--split", "test", "--quiet"], capsys)
    line = _one_error(err)
    assert code == 1 and "not enough free space" in line, line
    free["bytes"] = need + 10 * len(files["test.tar.gz"])  # room for the scene temporaries too
    code, _, err = _cli(["download", tmp_path / "out", "--split", "test", "--quiet"], capsys)
    assert code == 0, err


def test_an_interrupted_extraction_leaves_no_half_scene_and_resumes(host, dataset, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the second scene is being written: it is removed, the first stays, the rerun finishes."""
    real_extractfile = tarfile.TarFile.extractfile
    seen = []

    class Interrupting:
        def __init__(self, inner):
            self.inner = inner

        def read(self, n=-1):
            data = self.inner.read(min(n, 4096) if n and n > 0 else 4096)
            os.kill(os.getpid(), signal.SIGINT)  # a real signal, handled by the CLI's handler
            return data

    def extractfile(self, member):
        f = real_extractfile(self, member)
        seen.append(member.name)
        return Interrupting(f) if len(seen) == 2 else f

    out = tmp_path / "out"
    monkeypatch.setattr(tarfile.TarFile, "extractfile", extractfile)
    try:
        code, _, err = _cli(["download", out, "--split", "train", "--quiet"], capsys)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert code == 130 and "interrupted" in err, err
    monkeypatch.setattr(tarfile.TarFile, "extractfile", real_extractfile)
    assert _temporaries(out) == []
    first, second = (Path(n).name for n in seen[:2])
    assert (out / "train" / first).read_bytes() == (dataset["root"] / "train" / first).read_bytes()
    assert not (out / "train" / second).exists()
    assert sorted(p.name for p in (out / "downloads").iterdir()) == ["train.tar.gzaa", "train.tar.gzab"]

    host.log.clear()
    code, stdout, err = _cli(["download", out, "--split", "train", "--quiet"], capsys)
    assert code == 0, err
    assert host.gets() == []  # the verified archives were kept for this
    assert "kept 1 already there" in stdout
    _same_as_source(out, dataset, ["train"])


def test_sigterm_during_a_download_keeps_the_part_for_the_next_run(host, dataset, tmp_path, capsys):
    """A real SIGTERM to a real process mid-transfer: exit 143, the .part stays and the rerun resumes it."""
    import sys
    import time

    host.faults["test.tar.gz"] = [("stall", 3000)]
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(dl.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "autoice", "download", str(out), "--split", "test", "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    part = out / "downloads" / "test.tar.gz.part"
    deadline = time.monotonic() + 60
    while not (part.is_file() and part.stat().st_size == 3000) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    host.release.set()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert part.stat().st_size == 3000 and _temporaries(out) == []
    host.log.clear()
    code, _, err = _cli(["download", out, "--split", "test", "--quiet"], capsys)
    assert code == 0, err
    assert [(e[1], e[2]) for e in host.gets()] == [("test.tar.gz", "bytes=3000-")]
    _same_as_source(out, dataset, ["test"])


def test_a_killed_extraction_leaves_only_a_temporary_that_the_next_run_removes(host, dataset, tmp_path, capsys):
    """kill -9 mid-scene: the half scene exists only as a temporary of a dead process."""
    from autoice import atomic

    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    name = dataset["scenes"]["train"][0]
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = gone.pid  # a process that has ended
    half = out / "train" / f".{name}.{atomic._host()}.{dead}.abcd1234.tmp"
    half.write_bytes((dataset["root"] / "train" / name).read_bytes()[:1000])
    code, _, err = _cli(["download", out, "--split", "train", "--quiet"], capsys)
    assert code == 0, err
    assert _temporaries(out) == []
    _same_as_source(out, dataset, ["train"])


def test_a_damaged_archive_with_a_matching_checksum_is_one_line(dataset, tmp_path, capsys, monkeypatch):
    """The published md5 is of a broken archive (a bad upload): the stream fails, no half scene is left."""
    files = dict(dataset["files"])
    files["train.tar.gzab"] = files["train.tar.gzab"][: len(files["train.tar.gzab"]) // 2]
    with Host(files) as h:
        monkeypatch.setenv(dl.ENDPOINT_ENV, h.url)
        damaged = {**dataset, "files": files}
        monkeypatch.setenv(dl.MANIFEST_ENV, str(_manifest(tmp_path / "m.json", damaged)))
        code, _, err = _cli(["download", tmp_path / "out", "--split", "train", "--quiet"], capsys)
    line = _one_error(err)
    assert code == 1 and "train.tar.gzaa, train.tar.gzab: damaged archive" in line, line
    assert _temporaries(tmp_path / "out") == []
    for f in (tmp_path / "out" / "train").iterdir():  # whatever came before the damage is whole
        assert f.read_bytes() == (dataset["root"] / "train" / f.name).read_bytes()


def test_missing_and_extra_scenes_are_listed(dataset, tmp_path, capsys, monkeypatch):
    train = dataset["scenes"]["train"]
    wanted = [*train[1:], "20991231T000000_dmi_prep.nc"]  # one more than the archive, one fewer
    with Host(dataset["files"]) as h:
        monkeypatch.setenv(dl.ENDPOINT_ENV, h.url)
        manifest = _manifest(tmp_path / "m.json", dataset, scenes={"train": wanted, "test": dataset["scenes"]["test"]})
        monkeypatch.setenv(dl.MANIFEST_ENV, str(manifest))
        code, _, err = _cli(["download", tmp_path / "out", "--split", "train", "--quiet"], capsys)
        line = _one_error(err)
        assert code == 1 and "1 of" in line and "20991231T000000_dmi_prep.nc" in line and "archives kept" in line
        # the list without the invented scene: complete, but the archive's extra scene is named
        fewer = _manifest(tmp_path / "m2.json", dataset, scenes={"train": train[1:], "test": dataset["scenes"]["test"]})
        monkeypatch.setenv(dl.MANIFEST_ENV, str(fewer))
        code, stdout, err = _cli(["download", tmp_path / "out", "--split", "train", "--quiet"], capsys)
        assert code == 0, err
        assert f"warning: {tmp_path / 'out' / 'train'}: 1 scene file(s) not in the list: {train[0]}" in err
        assert h.gets("train.tar.gzaa") == h.gets("train.tar.gzaa")[:1]  # archives were kept: fetched once


def test_bad_settings_are_one_line_errors(tmp_path, capsys, monkeypatch, dataset):
    monkeypatch.delenv(dl.ENDPOINT_ENV, raising=False)
    monkeypatch.delenv(dl.MANIFEST_ENV, raising=False)
    cases = {
        "DTU source is not implemented": ["--source", "dtu"],
        "is not an http(s) URL": ["--endpoint", "ftp://example.org"],
        "cannot read this manifest": ["--manifest", tmp_path / "none.json"],
    }
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    cases["not a JSON manifest"] = ["--manifest", bad]
    nomd5 = _manifest(tmp_path / "nomd5.json", dataset, md5={"metadata.csv": "0" * 32})
    cases["no md5 for 'train.tar.gzaa'"] = ["--manifest", nomd5]
    for expected, args in cases.items():
        code, _, err = _cli(["download", tmp_path / "out", *args], capsys)
        line = _one_error(err)
        assert code == 1 and expected in line, (expected, line)
    assert not (tmp_path / "out").exists()  # settings are checked before anything is made


def test_a_refused_host_fails_after_its_retries(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(dl.ENDPOINT_ENV, f"http://127.0.0.1:{port}")
    code, _, err = _cli(["download", tmp_path / "out", "--retries", "1", "--quiet"], capsys)
    line = _one_error(err)
    assert code == 1 and "download failed after 2 attempts" in line and "refused" in line.lower(), line


# ----------------------------------------------------------------------------- the published facts
def test_the_packaged_source_holds_the_published_facts():
    """torchgeo's AI4ArcticSeaIce (microsoft/torchgeo PR #2528): URL, file names and md5s."""
    source = dl.load_source("hf")
    assert source.url_of("train.tar.gzaa") == \
        "https://huggingface.co/datasets/torchgeo/ai4artic-sea-ice-challenge/resolve/main/train.tar.gzaa"  # fmt: skip
    assert source.md5 == {
        "metadata.csv": "4b610118c2d182325ec7599434b37deb",
        "train.tar.gzaa": "847ea12d0a5100f0a00af4bb110404b4",
        "train.tar.gzab": "3f4770c586487dc681d1d216c7003f2c",
        "test.tar.gz": "bca98ec6734783aa6f005382549a0d21",
    }
    assert source.splits == {"train": ("train.tar.gzaa", "train.tar.gzab"), "test": ("test.tar.gz",)}
    assert len(source.scenes["train"]) == 512 and len(source.scenes["test"]) == 40
    assert all(n.endswith("_prep.nc") for n in source.scenes["train"])
    assert sum(n.endswith("_prep_reference.nc") for n in source.scenes["test"]) == 20


def test_an_endpoint_replaces_only_the_host(monkeypatch):
    source = dl.load_source("hf", endpoint="http://mirror.example:8080/")
    assert source.url_of("test.tar.gz") == \
        "http://mirror.example:8080/datasets/torchgeo/ai4artic-sea-ice-challenge/resolve/main/test.tar.gz"  # fmt: skip
    assert source.md5 == dl.load_source("hf").md5


@pytest.mark.skipif(not SHARED.exists(), reason="shared/ not beside the checkout")
def test_the_expected_scenes_are_the_organisers_lists():
    """dataset.json / testset.json are already shipped (official_scenes.json, official_test_scenes.csv)."""
    train = json.loads((SHARED / "realdata/autoice_official/dataset.json").read_text())
    test = json.loads((SHARED / "realdata/autoice_official/testset.json").read_text())
    files = dl.official_files()
    assert files["train"] == {schema.raw_to_rtt_name(n) for n in train}
    keys = {schema.raw_to_rtt_name(n)[: schema.SCENE_KEY_LENGTH] for n in test}
    assert files["test"] == {k + s for k in keys for s in (schema.RTT_SUFFIX, schema.REFERENCE_SUFFIX)}


def test_extraction_writes_scenes_only_inside_their_folder(dataset, tmp_path):
    """Members with ../ paths, links or other names never land outside OUT/<split> (no extractall)."""
    name = dataset["scenes"]["train"][0]
    data = (dataset["root"] / "train" / name).read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for arcname in (f"../../{name}", "../../evil.sh"):
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("train/20200101T000000_dmi_prep.nc")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    half = len(buf.getvalue()) // 2
    (tmp_path / "a").write_bytes(buf.getvalue()[:half])
    (tmp_path / "b").write_bytes(buf.getvalue()[half:])
    got = dl.extract([tmp_path / "a", tmp_path / "b"], tmp_path / "out" / "train", progress=False)
    assert got.written == [name] and got.ignored == ["../../evil.sh", "train/20200101T000000_dmi_prep.nc"]
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == [name]
    assert (tmp_path / "out" / "train" / name).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "out"]
