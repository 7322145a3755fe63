"""Downloads for the data fetchers: streamed to a .part file, renamed only when complete, hashes checked."""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import urllib.request

logger = logging.getLogger(__name__)


def file_digest(path: str, algorithm: str) -> str:
    """Hex digest ('md5', 'sha1', 'sha256') of the file at ``path``, read in 1 MB chunks."""
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dst: str) -> None:
    """Stream ``url`` to ``dst`` through ``dst.part``; the size the server announced must be reached."""
    part = dst + '.part'
    logger.info(f'downloading {url}')
    with urllib.request.urlopen(url, timeout=60) as r, open(part, 'wb') as f:
        total = int(r.headers.get('Content-Length') or 0)
        done = 0
        for chunk in iter(lambda: r.read(1 << 20), b''):
            f.write(chunk)
            done += len(chunk)
            if total and sys.stderr.isatty():
                sys.stderr.write(f'\r  {done / 1e6:.0f} / {total / 1e6:.0f} MB')  # a terminal's progress line
    if total and done != total:
        raise OSError(f'{url}: got {done} bytes of {total}')
    os.replace(part, dst)
