"""Webhook signing (the Standard Webhooks spec), the signing secret, and checks on receiver URLs.

Signature: `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key is
the base64 part of a `whsec_...` secret. The `standardwebhooks` package verifies it (tests do).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit, urlunsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stt_common.errors import InputError, InvalidWebhookUrl
from stt_common.models import DEFAULT_TENANT, SigningSecret

SECRET_PREFIX = "whsec_"
SECRET_NAME = "webhooks"  # the row in `signing_secrets` when STT_WEBHOOK_SECRET is not set
MAX_URL_LENGTH = 2048

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value for one attempt."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signing_secret(session: Session, configured: str | None, tenant: str = DEFAULT_TENANT) -> str:
    """STT_WEBHOOK_SECRET when set (one secret for every tenant); otherwise the tenant's own, made once
    and kept in the database (`python -m api.admin webhook-secret --tenant T`, or the tenant's
    `GET /v1/webhooks/secret`). Per-tenant secrets mean no tenant can sign events for another."""
    if configured:
        _key(configured)
        return configured
    name = SECRET_NAME if tenant == DEFAULT_TENANT else f"tenant:{tenant}"
    row = session.get(SigningSecret, name)
    if row is not None:
        return row.secret
    try:
        with session.begin_nested():
            session.add(SigningSecret(name=name, secret=new_secret()))
    except IntegrityError:  # another process made it first
        pass
    row = session.get(SigningSecret, name)
    assert row is not None
    return row.secret


def check_url(url: str, allowlist: Sequence[str] = ()) -> str:
    """Refuse a `webhook_url` that can never be delivered (`checked_outbound_url`), or with a #fragment."""
    if checked_outbound_url(url, allowlist, "webhook_url", InvalidWebhookUrl).fragment:
        raise InvalidWebhookUrl("webhook_url must not have a #fragment")
    return url


def checked_outbound_url(url: str, allowlist: Sequence[str], field: str, error: type[InputError]) -> SplitResult:
    """What the service refuses to call before any lookup, for webhooks and audio URLs alike: not http(s),
    no host, a user name or password, over-long, or a host that is itself a non-public address (or
    `localhost`) not in `allowlist`. Names are judged when calling, on what they resolve to
    (`public_address`)."""
    if len(url) > MAX_URL_LENGTH:
        raise error(f"{field} is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise error(f"{field} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise error(f"{field} must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise error(f"{field} must not carry a user name or password")
    host = parts.hostname
    literal = ipaddress.ip_address("127.0.0.1") if host.lower() == "localhost" else _ip_or_none(host)
    if literal is not None and not is_public(literal) and not allowed(literal, host, allowlist):
        raise error(
            f"{field} points at {host}, which is not a public address; an operator can allow it with "
            "STT_WEBHOOK_ALLOWED_HOSTS (the service's one list of allowed outbound hosts)"
        )
    return parts


def pinned_url(parts: SplitResult, address: IpAddress, port: int) -> str:
    """The URL with its host replaced by the checked address, so no second lookup can differ (the caller
    sends the original host in the Host header and as the TLS server name)."""
    host = f"[{address}]" if address.version == 6 else str(address)
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))


def _ip_or_none(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


class AddressRefused(Exception):
    """The receiver's name resolves to an address the service must not call (SSRF guard)."""


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 address is the last 32 bits
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, for local translators: never a public receiver


def _embedded_ipv4(ip: IpAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses hidden in an IPv6 one (mapped ::ffff:a.b.c.d, 6to4, Teredo, NAT64): a NAT64
    gateway connects to 64:ff9b::7f00:1 as to 127.0.0.1."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in found if v4 is not None]


def is_public(ip: IpAddress) -> bool:
    """Global unicast only: no loopback, private, shared (CGNAT), link-local (cloud metadata lives at
    169.254.169.254), multicast, reserved or unspecified address, however it is spelled."""
    if ip in NAT64_LOCAL:
        return False
    candidates = [ip, *_embedded_ipv4(ip)]
    return all(c.is_global and not c.is_multicast for c in candidates)


def allowed(ip: IpAddress, host: str, allowlist: Sequence[str]) -> bool:
    """An allowlist entry is a host name, an address or a network (CIDR)."""
    for entry in allowlist:
        if entry.lower() == host.lower():
            return True
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def resolve(host: str, port: int) -> list[IpAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, IpAddress] = {}
    for *_, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone
        seen.setdefault(address, ipaddress.ip_address(address))
    return list(seen.values())


def public_address(host: str, port: int, allowlist: Sequence[str]) -> IpAddress:
    """The address to connect to: every address the name resolves to must be public (or allowlisted),
    so that a name mixing public and private answers cannot slip through on a second lookup.
    Raises AddressRefused; socket.gaierror when the name does not resolve."""
    addresses = resolve(host, port)
    refused = [ip for ip in addresses if not (is_public(ip) or allowed(ip, host, allowlist))]
    if refused:
        raise AddressRefused(f"{host} resolves to {refused[0]}, which is not a public address")
    return addresses[0]
