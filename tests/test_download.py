"""asr.download: resumed, verified downloads and safe unpacking, against a local server."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading

import pytest

from asr.download import DownloadError, download, extract, file_digest


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``payload`` with Range support; counts the bytes it sent."""

    payload = b""
    sent: list[int]
    cut_after: int | None = None  # drop the connection after this many bytes (once)

    def do_GET(self):
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = type(self).cut_after
        if cut is not None:
            type(self).cut_after = None
            body = body[:cut]
        self.sent.append(len(body))  # before the write: the client may check it as soon as it has the bytes
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.payload = bytes(range(256)) * 4096  # 1 MiB
    _RangeHandler.sent = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()


def test_download_verifies_and_resumes(server, tmp_path):
    payload = _RangeHandler.payload
    sha = hashlib.sha256(payload).hexdigest()
    _RangeHandler.cut_after = 300_000
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server, dest, sha256=sha, progress=False)
    assert not dest.exists() and (tmp_path / "f.bin.part").stat().st_size == 300_000
    assert download(server, dest, sha256=sha, progress=False) == dest
    assert dest.read_bytes() == payload and not (tmp_path / "f.bin.part").exists()
    assert _RangeHandler.sent == [300_000, len(payload) - 300_000]  # the second request resumed
    download(server, dest, sha256=sha, progress=False)  # already there: nothing fetched
    assert len(_RangeHandler.sent) == 2


def test_download_checksum_mismatch_deletes_the_file(server, tmp_path):
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="expected 0000"):
        download(server, dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()
    md5 = hashlib.md5(_RangeHandler.payload).hexdigest()
    sha = hashlib.sha256(_RangeHandler.payload).hexdigest()
    with pytest.raises(DownloadError, match=f"its md5 is {md5}, expected 1111"):  # both given: both must match
        download(server, dest, sha256=sha, md5="1" * 32, progress=False)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()
    assert download(server, dest, sha256=sha, md5=md5, progress=False).read_bytes() == _RangeHandler.payload
    with pytest.raises(DownloadError, match="exists but"):
        download(server, dest, sha256="0" * 64, progress=False)


def test_download_file_url_and_unreachable(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello" * 1000)
    dest = download(src.as_uri(), tmp_path / "out" / "dst.bin", sha256=file_digest(src), progress=False)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DownloadError, match="cannot connect|HTTP"):
        download((tmp_path / "missing.bin").as_uri(), tmp_path / "m.bin", progress=False)


def test_extract_refuses_members_outside_the_folder(tmp_path):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DownloadError, match="outside"):
        extract(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as t:
        info = tarfile.TarInfo("a/b.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"ok"))
    extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "b.txt").read_text() == "ok"
    (tmp_path / "out" / "a" / "b.txt").unlink()
    extract(good, tmp_path / "out")  # marked as done: not unpacked again
    assert not (tmp_path / "out" / "a" / "b.txt").exists()
    (tmp_path / "junk.tar").write_bytes(b"junk")
    with pytest.raises(DownloadError, match="not a tar or zip"):
        extract(tmp_path / "junk.tar", tmp_path / "out2")


def _tar(path, *members):
    with tarfile.open(path, "w") as t:
        for info in members:
            t.addfile(info, io.BytesIO(b"ok") if info.isfile() else None)
    return path


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = 2 if kind == tarfile.REGTYPE else 0
    return info


def test_extract_resolves_links_as_tar_does_and_refuses_special_files(tmp_path):
    # A hard link's target is relative to the archive root: "a/b/data.txt" -> a/b/data.txt
    # (inside), while "../../x" from a member two folders deep escapes only if read as root-relative.
    ok = _tar(tmp_path / "ok.tar", _member("a/b/data.txt"), _member("a/b/hard", tarfile.LNKTYPE, "a/b/data.txt"),
              _member("a/b/soft", tarfile.SYMTYPE, "data.txt"))
    extract(ok, tmp_path / "ok")
    assert (tmp_path / "ok" / "a" / "b" / "hard").read_text() == "ok"
    assert (tmp_path / "ok" / "a" / "b" / "soft").read_text() == "ok"
    # Root-relative "../outside.txt" leaves the folder, though from a/b/ it would not.
    escape = _tar(tmp_path / "escape.tar", _member("a/b/c.txt"), _member("a/b/hard", tarfile.LNKTYPE, "../outside"))
    with pytest.raises(DownloadError, match="'a/b/hard' would be written outside"):
        extract(escape, tmp_path / "escape")
    for kind in (tarfile.FIFOTYPE, tarfile.CHRTYPE):
        special = _tar(tmp_path / f"special{kind}.tar", _member("dev/thing", kind))
        with pytest.raises(DownloadError, match="'dev/thing' is a device or pipe"):
            extract(special, tmp_path / f"special{kind}")
