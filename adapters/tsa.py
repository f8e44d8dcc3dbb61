"""The time-stamping authority over HTTP (RFC 3161 §3.4): POST a TimeStampReq, read the TimeStampResp."""

from __future__ import annotations

import urllib.error
import urllib.request

from adapters.errors import AdapterError
from security.timestamps import CONTENT_TYPE_QUERY, CONTENT_TYPE_REPLY

MAX_REPLY_BYTES = 1 << 20


class TsaUnreachable(AdapterError):
    """The TSA did not answer, or answered with something other than a time-stamp reply."""


def post_request(url: str, request: bytes, timeout_s: float) -> bytes:
    http = urllib.request.Request(url, data=request, method="POST", headers={"Content-Type": CONTENT_TYPE_QUERY})
    try:
        with urllib.request.urlopen(http, timeout=timeout_s) as answer:
            kind = answer.headers.get("Content-Type", "")
            body = answer.read(MAX_REPLY_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise TsaUnreachable(f"the TSA at {url} did not answer: {getattr(error, 'reason', error)}") from None
    if not kind.startswith(CONTENT_TYPE_REPLY) or len(body) > MAX_REPLY_BYTES:
        raise TsaUnreachable(f"the TSA at {url} answered {kind or 'no content type'} ({len(body)} bytes), "
                             f"not {CONTENT_TYPE_REPLY}")
    return body
