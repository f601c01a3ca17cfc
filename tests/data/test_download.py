import os
import re
import urllib.error
import urllib.request

import pytest

from minidl.data import download
from minidl.data.download import (CHECKSUMS, ChecksumError, DownloadError, ForeignFileError, cache_dir, ensure_file,
                                  fetch)

from .fakes import FakeOpener, checksum_of

GOOD = b"the official bytes " * 100
URL = "https://mirror-a.example/data.gz"
URL_B = "https://mirror-b.example/data.gz"


def leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


def test_the_network_guard_refuses_real_downloads(tmp_path):
    with pytest.raises(AssertionError, match="network"):
        urllib.request.urlopen("https://example.org")
    with pytest.raises(AssertionError, match="network"):
        fetch([URL], tmp_path / "x", checksum_of(GOOD), retry_delay=0)


def test_cache_dir_follows_minidl_data(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("MINIDL_DATA")
    assert cache_dir().parts[-3:] == (".cache", "minidl", "data")


def test_good_file_is_accepted(tmp_path):
    opener = FakeOpener({URL: [GOOD]})
    path = fetch([URL], tmp_path / "data.gz", checksum_of(GOOD), opener=opener, retry_delay=0)
    assert path.read_bytes() == GOOD
    assert opener.calls == [URL]
    assert leftovers(tmp_path) == []


def test_checksum_mismatch_is_retried_then_reported(tmp_path):
    opener = FakeOpener({URL: [b"X" + GOOD[1:]]})  # right size, wrong bytes, every time
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        fetch([URL], tmp_path / "data.gz", checksum_of(GOOD), opener=opener, retries=3, retry_delay=0)
    assert opener.calls == [URL] * 3
    assert "mirror-a.example" in info.value.reason and "\n" not in info.value.reason
    assert not (tmp_path / "data.gz").exists() and leftovers(tmp_path) == []


def test_checksum_mismatch_then_good_copy(tmp_path):
    opener = FakeOpener({URL: [b"X" + GOOD[1:], GOOD]})
    path = fetch([URL], tmp_path / "data.gz", checksum_of(GOOD), opener=opener, retry_delay=0)
    assert path.read_bytes() == GOOD and len(opener.calls) == 2


def test_truncated_transfer_is_detected_and_fetched_again(tmp_path):
    short = (GOOD[:500], len(GOOD))  # the server announced the full length but the connection dropped
    opener = FakeOpener({URL: [short, GOOD]})
    path = fetch([URL], tmp_path / "data.gz", checksum_of(GOOD), opener=opener, retry_delay=0)
    assert path.read_bytes() == GOOD and len(opener.calls) == 2


def test_truncated_file_without_content_length_is_caught_by_size(tmp_path):
    opener = FakeOpener({URL: [(GOOD[:500], None)]})
    with pytest.raises(DownloadError, match="truncated"):
        fetch([URL], tmp_path / "data.gz", checksum_of(GOOD), opener=opener, retries=2, retry_delay=0)
    assert not (tmp_path / "data.gz").exists()


def test_unreachable_mirror_is_skipped_at_once(tmp_path):
    opener = FakeOpener({URL_B: [GOOD]})  # mirror a does not resolve
    path = fetch([URL, URL_B], tmp_path / "data.gz", checksum_of(GOOD), opener=opener, retries=3, retry_delay=0)
    assert path.read_bytes() == GOOD
    assert opener.calls == [URL, URL_B]


def test_http_errors_5xx_retried_4xx_not(tmp_path):
    server_error = urllib.error.HTTPError(URL, 503, "Service Unavailable", {}, None)
    not_found = urllib.error.HTTPError(URL_B, 404, "Not Found", {}, None)
    opener = FakeOpener({URL: [server_error, GOOD]})
    fetch([URL], tmp_path / "a", checksum_of(GOOD), opener=opener, retry_delay=0)
    assert opener.calls == [URL, URL]
    opener = FakeOpener({URL_B: [not_found]})
    with pytest.raises(DownloadError, match="404"):
        fetch([URL_B], tmp_path / "b", checksum_of(GOOD), opener=opener, retries=3, retry_delay=0)
    assert opener.calls == [URL_B]


def test_module_level_opener_is_used(monkeypatch, tmp_path):
    opener = FakeOpener({URL: [GOOD]})
    monkeypatch.setattr(download, "urlopen", opener)
    fetch([URL], tmp_path / "data.gz", checksum_of(GOOD), retry_delay=0)
    assert opener.calls == [URL]


def test_minidl_s_own_damaged_download_is_fetched_again(tmp_path, caplog):
    dest = tmp_path / "data.gz"
    fetch([URL], dest, checksum_of(GOOD), opener=FakeOpener({URL: [GOOD]}), retry_delay=0)
    dest.write_bytes(GOOD[:-10] + b"0123456789")  # damaged since: same size, different bytes
    opener = FakeOpener({URL: [GOOD]})
    ensure_file(dest, checksum_of(GOOD), [URL], opener=opener, retry_delay=0)
    assert dest.read_bytes() == GOOD and opener.calls == [URL]
    assert "minidl's own damaged download" in caplog.text


def test_a_mismatching_file_minidl_did_not_download_is_never_touched(tmp_path):
    dest = tmp_path / "data.gz"
    mine = GOOD[:-10] + b"0123456789"
    dest.write_bytes(mine)
    opener = FakeOpener({URL: [GOOD]})
    with pytest.raises(ForeignFileError, match=re.escape(str(dest)) + ".*not the official file.*left as it is"):
        ensure_file(dest, checksum_of(GOOD), [URL], opener=opener, retry_delay=0)
    assert dest.read_bytes() == mine and opener.calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["data.gz"]


def test_a_killed_download_s_partial_file_is_removed_on_the_next_fetch(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".data.gz.{int(dead.stdout)}.1234.part"
    stale.write_bytes(GOOD[:50])
    live = tmp_path / f".data.gz.{os.getpid()}.99.part"  # a live process's partial file: not ours to remove
    live.write_bytes(GOOD[:50])
    other = tmp_path / ".notes.txt.1.part"  # another name: never touched
    other.write_bytes(b"x")
    fetch([URL], tmp_path / "data.gz", checksum_of(GOOD), opener=FakeOpener({URL: [GOOD]}), retry_delay=0)
    assert not stale.exists() and live.exists() and other.exists()


def test_cached_good_file_is_used_without_network(tmp_path):
    dest = tmp_path / "data.gz"
    dest.write_bytes(GOOD)
    opener = FakeOpener({})
    assert ensure_file(dest, checksum_of(GOOD), [URL], opener=opener) == dest
    assert opener.calls == []


def test_a_damaged_download_without_download_allowed_is_reported_and_kept(tmp_path):
    dest = tmp_path / "data.gz"
    fetch([URL], dest, checksum_of(GOOD), opener=FakeOpener({URL: [GOOD]}), retry_delay=0)
    dest.write_bytes(GOOD[:100])
    with pytest.raises(ChecksumError, match="truncated"):
        ensure_file(dest, checksum_of(GOOD), [URL], download=False)
    assert dest.read_bytes() == GOOD[:100]


def test_check_file_names_the_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(GOOD[:10])
    with pytest.raises(ChecksumError, match=re.escape(str(path))):
        download.check_file(path, checksum_of(GOOD))


def test_checksum_table_is_complete_and_well_formed():
    expected = {f"{d}/{p}-{k}" for d in ("mnist", "fashion-mnist") for p in ("train", "t10k")
                for k in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz")} | {"cifar10/cifar-10-python.tar.gz"}
    assert set(CHECKSUMS) == expected
    for checksum in CHECKSUMS.values():
        assert re.fullmatch("[0-9a-f]{64}", checksum.sha256) and re.fullmatch("[0-9a-f]{32}", checksum.md5)
        assert checksum.size > 0
    assert len({c.sha256 for c in CHECKSUMS.values()}) == len(CHECKSUMS)
