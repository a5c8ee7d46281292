"""Audio by URL: the worker downloads a job's `audio_url` once, streamed to a private file, under the same
SSRF guard as webhooks (every hop's host resolved and checked; the connection pinned to the checked
address), with the upload size limit and one deadline for the whole download. Failures are the job's
own and final, each with a code: `url_forbidden`, `url_unreachable`, `url_too_large`.

A presigned S3/GCS URL works as it is (its query and Host are sent unchanged). Its query is a credential:
logs and the stored job carry only scheme, host and path (`redacted`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from stt_common.errors import UrlForbidden, UrlTooLarge, UrlUnreachable
from stt_common.webhooks import AddressRefused, IpAddress, checked_outbound_url, pinned_url, public_address

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Fetched:
    bytes: int
    content_type: str | None
    filename: str | None  # the last path segment of the final URL


def redacted(url: str) -> str:
    """Scheme, host (and port) and path: no userinfo, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_audio_url(url: str, allowlist: Sequence[str] = ()) -> str:
    """What can be refused at submission (`webhooks.checked_outbound_url`, the same rules as a webhook's):
    a presigned URL's query, and a #fragment (never sent), are fine."""
    checked_outbound_url(url, allowlist, "audio_url", UrlForbidden)
    return url


def download(url: str, target: BinaryIO, *, max_bytes: int, deadline_s: float, allowlist: Sequence[str]) -> Fetched:
    """Stream `url` into `target`, following at most MAX_REDIRECTS redirects, each checked like the first."""
    deadline = time.monotonic() + deadline_s
    current = check_audio_url(url, allowlist)
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(current)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = _checked_address(host, port, allowlist, deadline)
            try:
                with client.stream(
                    "GET",
                    pinned_url(parts, address, port),
                    headers={"host": parts.netloc, "user-agent": "turkish-stt (audio_url fetch)"},
                    timeout=httpx.Timeout(_left(deadline), connect=min(10.0, _left(deadline))),
                    extensions={"sni_hostname": host} if parts.scheme == "https" else {},
                ) as response:
                    if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                        current = check_audio_url(urljoin(current, response.headers["location"]), allowlist)
                        continue
                    if response.status_code != 200:
                        raise UrlUnreachable(f"audio_url: the server answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise UrlTooLarge(f"audio_url declares {declared} bytes; the limit is {max_bytes}")
                    size = _copy(response, target, max_bytes, deadline)
                    name = urlsplit(current).path.rsplit("/", 1)[-1] or None
                    return Fetched(size, response.headers.get("content-type"), name)
            except (TimeoutError, httpx.TimeoutException):
                raise UrlUnreachable(f"audio_url: no complete answer within {deadline_s:g} s") from None
            except httpx.TransportError as exc:
                raise UrlUnreachable(f"audio_url: {exc.__class__.__name__} connecting to {host}") from None
    raise UrlUnreachable(f"audio_url: more than {MAX_REDIRECTS} redirects")


_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="audio-url-dns")


def _checked_address(host: str, port: int, allowlist: Sequence[str], deadline: float) -> IpAddress:
    """`public_address` within what is left of the deadline. getaddrinfo cannot be interrupted (a slow
    resolver holds it for its own timeouts, times every hop), so it runs in a small pool and is left
    behind when it hangs."""
    lookup = _resolver.submit(public_address, host, port, allowlist)
    try:
        return lookup.result(timeout=_left(deadline))
    except TimeoutError:
        raise UrlUnreachable(f"audio_url: the host {host} did not resolve in time") from None
    except AddressRefused as exc:
        raise UrlForbidden(f"audio_url: {exc}") from None
    except (socket.gaierror, UnicodeError):
        raise UrlUnreachable(f"audio_url: the host {host} does not resolve") from None


def _copy(response: httpx.Response, target: BinaryIO, max_bytes: int, deadline: float) -> int:
    size = 0
    for chunk in response.iter_bytes():  # as each read arrives (so the deadline is checked); decoded sizes
        size += len(chunk)
        if size > max_bytes:
            raise UrlTooLarge(f"audio_url sends more than the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError
        target.write(chunk)
    return size


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())
