"""The settlement file, streamed from S3 line by line (never read whole)."""
from __future__ import annotations

from typing import Any, Iterator, Optional

from chalicelib import aws

CHUNK_BYTES = 64 * 1024


def stream_lines(bucket: str, key: str, *, version_id: Optional[str] = None,
                 chunk_size: int = CHUNK_BYTES) -> Iterator[str]:
    """The object's lines as text, without line ends ("\\n", "\\r\\n" or "\\r").

    GetObject is called now, so a missing object or a refused read raises here (botocore's ClientError);
    the body is then read `chunk_size` bytes at a time while the lines are consumed, and closed when they
    are exhausted or the iterator is closed. Lines are UTF-8; a line that is not valid UTF-8 comes out
    with U+FFFD in place of the bad bytes, which the parsers report as a malformed line (reason
    "not_utf8") rather than failing the whole file. Memory: one chunk plus the longest line.
    """
    args: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    body = aws.client("s3").get_object(**args)["Body"]
    return _lines(body, chunk_size)


def _lines(body: Any, chunk_size: int) -> Iterator[str]:
    try:
        for raw in body.iter_lines(chunk_size=chunk_size):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                yield raw.decode("utf-8", "replace")
    finally:
        body.close()
