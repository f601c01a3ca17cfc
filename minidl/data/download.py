"""Fetching dataset files: official mirrors, SHA-256 checks, retries and atomic writes.

Every file minidl downloads is listed in :data:`CHECKSUMS`. A file is streamed into a temporary file next
to its destination, hashed on the way, and renamed into place only when its size and SHA-256 match, so a
truncated or corrupt transfer is reported, its partial file deleted and fetched again, and never read.

A completed download gets a small marker beside it (``.NAME.minidl-download``, holding its SHA-256).
minidl never deletes a dataset file: a cached file that no longer matches its checksum is replaced by a
fresh verified download only when its marker says minidl wrote it; any other file (the user's own copy)
is left exactly as it is and reported (:class:`ForeignFileError`). Partial downloads of a killed process
(``.NAME.PID.THREAD.part``) are removed on the next fetch of that file.

The opener is the module attribute :data:`urlopen` (or the ``opener=`` argument), so tests can serve
files from memory without any network:

>>> fetch(["https://example.org/f.gz"], "/tmp/f.gz", sha256="...", opener=fake_urlopen)  # doctest: +SKIP
"""
import hashlib
import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import namedtuple
from pathlib import Path

from minidl.serialization import remove_stale_temporaries

urlopen = urllib.request.urlopen  # swapped for a fake in tests

logger = logging.getLogger("minidl.data")

Checksum = namedtuple("Checksum", "sha256 md5 size")

# The official files. SHA-256 values as published by TensorFlow Datasets (url_checksums/mnist.txt and
# fashion_mnist.txt; its MNIST entries were taken from the cvdf mirror, byte-identical to LeCun's: same
# sizes and the same MD5s) and by Keras (datasets/cifar10.py), each cross-checked against several
# independent projects that pin the same values. MD5 values are the ones torchvision and the Fashion-MNIST
# README publish; they are kept for cross-reference only, the SHA-256 and the size are what is checked.
# Debian's dataset-fashion-mnist re-gzips the files (each .gz is 24 bytes smaller: no file name in the
# gzip header), so its bytes match neither hash; see fashion-mnist handling in mnist.py.
CHECKSUMS = {
    "mnist/train-images-idx3-ubyte.gz": Checksum(
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
    "mnist/train-labels-idx1-ubyte.gz": Checksum(
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "d53e105ee54ea40749a09fcbcd1e9432", 28881),
    "mnist/t10k-images-idx3-ubyte.gz": Checksum(
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "9fb629c4189551a2d022fa330f9573f3", 1648877),
    "mnist/t10k-labels-idx1-ubyte.gz": Checksum(
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ec29112dd5afa0611ce80d1b7f02629c", 4542),
    "fashion-mnist/train-images-idx3-ubyte.gz": Checksum(
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
    "fashion-mnist/train-labels-idx1-ubyte.gz": Checksum(
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "25c81989df183df01b3e8a0aad5dffbe", 29515),
    "fashion-mnist/t10k-images-idx3-ubyte.gz": Checksum(
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "bef4ecab320f06d8554ea6380940ec79", 4422102),
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": Checksum(
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "bb300cfdad3c16e7a12a480ee83cd310", 5148),
    "cifar10/cifar-10-python.tar.gz": Checksum(
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        "c58f30108f718f92721af3b95e74349a", 170498071),
}

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """No mirror gave a file with the expected checksum. ``reason`` is a one-line summary."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


class ChecksumError(ValueError):
    """A downloaded or cached file whose size or SHA-256 is not the published one."""


class ForeignFileError(ChecksumError):
    """A file in the data directory that minidl did not download and that is not the official one.

    minidl leaves it untouched; the dataset reads it when it parses, else the error names it."""


def cache_dir():
    """Where datasets live: ``$MINIDL_DATA``, else ``~/.cache/minidl/data``."""
    return Path(os.environ.get("MINIDL_DATA") or Path.home() / ".cache" / "minidl" / "data").expanduser()


def offline():
    """True when ``$MINIDL_OFFLINE`` is set to something other than 0/empty: never try the network."""
    return os.environ.get("MINIDL_OFFLINE", "") not in ("", "0")


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path, checksum):
    """Raise :class:`ChecksumError` (naming the file) unless ``path`` has the expected size and SHA-256."""
    size = os.path.getsize(path)
    if checksum.size is not None and size != checksum.size:
        raise ChecksumError(f"{path}: {size} bytes, expected {checksum.size} (truncated or wrong file)")
    actual = file_sha256(path)
    if actual != checksum.sha256:
        raise ChecksumError(f"{path}: SHA-256 {actual[:16]}..., expected {checksum.sha256[:16]}...")


def ensure_file(path, checksum, urls, download=True, **fetch_options):
    """Return ``path`` holding a verified copy, downloading it from ``urls`` when missing or corrupt.

    A corrupt copy minidl downloaded itself is reported and replaced by a verified download (with
    ``download=False``, :class:`ChecksumError` is raised and the file kept). A mismatching file minidl did
    not download is never touched: :class:`ForeignFileError`. Without a copy and with ``download=False``,
    raises FileNotFoundError.
    """
    path = Path(path)
    if path.exists():
        try:
            check_file(path, checksum)
            return path
        except ChecksumError as err:
            if not downloaded_by_minidl(path):
                raise ForeignFileError(f"{err}: not the official file, and minidl did not download it, so it is "
                                       f"left as it is (move it away to download a fresh copy)") from None
            if not download:
                raise
            logger.warning("minidl.data: %s: fetching minidl's own damaged download again", err)
    if not download:
        raise FileNotFoundError(f"{path} does not exist (pass download=True to fetch it)")
    return fetch(urls, path, checksum, **fetch_options)


def _marker(path):
    return path.with_name(f".{path.name}.minidl-download")


def downloaded_by_minidl(path):
    """True when ``path`` was written by :func:`fetch` (its marker exists), so minidl may replace it."""
    try:
        return _marker(Path(path)).read_text().strip() != ""
    except OSError:
        return False


def _transient(err):
    """Worth retrying on the same mirror: a broken or corrupt transfer, or a 5xx/429 answer."""
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500 or err.code == 429
    return isinstance(err, (ChecksumError, http.client.IncompleteRead, EOFError))


def _describe(err):
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return f"unreachable ({err.reason})"
    return str(err) or type(err).__name__


def fetch(urls, dest, checksum, opener=None, retries=3, timeout=30.0, retry_delay=1.0, progress=None):
    """Download ``dest`` from the first of ``urls`` that yields the right bytes; return ``dest``.

    A corrupt or truncated transfer is retried up to ``retries`` times per mirror (waiting
    ``retry_delay * attempt`` seconds); an unreachable mirror is skipped at once. Raises
    :class:`DownloadError` listing every attempt when all fail.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temporaries(dest.parent, [dest.name], suffix=".part"):
        logger.info("minidl.data: removed %s, a partial download of a process that is gone", stale)
    if isinstance(urls, str):
        urls = [urls]
    attempts = []
    for url in urls:
        for attempt in range(1, retries + 1):
            try:
                _fetch_once(url, dest, checksum, opener or urlopen, timeout, progress)
                return dest
            except (OSError, ValueError, http.client.HTTPException, EOFError) as err:
                attempts.append(f"{url}: {_describe(err)}")
                if not _transient(err):
                    logger.info("minidl.data: %s", attempts[-1])
                    break
                logger.warning("minidl.data: %s (attempt %d of %d)", attempts[-1], attempt, retries)
                if attempt < retries and retry_delay:
                    time.sleep(retry_delay * attempt)
    if not attempts:
        raise DownloadError(f"could not download {dest.name}: no URLs given", reason="no URLs given")
    details = "\n  ".join(attempts)
    last_host = urllib.parse.urlsplit(urls[-1]).netloc or urls[-1]
    reason = f"{len(urls)} mirror(s) failed, last {last_host}: {attempts[-1].split(': ', 1)[-1]}"
    raise DownloadError(f"could not download {dest.name}:\n  {details}", reason=reason)


def _fetch_once(url, dest, checksum, opener, timeout, progress):
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    digest, received = hashlib.sha256(), 0
    try:
        with opener(url, timeout=timeout) as response, open(tmp, "wb") as out:
            announced = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
            total = int(announced) if announced else checksum.size
            bar = _progress_bar(dest.name, total, progress)
            for block in iter(lambda: response.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
                received += len(block)
                bar.update(len(block))
            bar.close()
            out.flush()
            os.fsync(out.fileno())
        if announced and received != int(announced):
            raise ChecksumError(f"truncated transfer: {received} of {announced} bytes")
        if checksum.size is not None and received != checksum.size:
            raise ChecksumError(f"got {received} bytes, expected {checksum.size} (truncated or wrong file)")
        if digest.hexdigest() != checksum.sha256:
            raise ChecksumError(f"checksum mismatch: SHA-256 {digest.hexdigest()[:16]}..., "
                                f"expected {checksum.sha256[:16]}...")
        os.replace(tmp, dest)
        _marker(dest).write_text(checksum.sha256 + "\n")
    finally:
        if tmp.exists():
            tmp.unlink()


def _progress_bar(name, total, progress):
    from tqdm import tqdm

    # disable=None: tqdm shows the bar only on a terminal
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, leave=False,
                disable=None if progress is None else not progress)
