"""Which addresses the extension may connect to.

Two policies, enforced by the HTTP client for every request, so that no provider module has to
remember them:

* The API base URL the artist configured: HTTPS, or plain HTTP to this computer (emulators,
  local gateways). It may be any host the artist chose.
* A link a server handed us (a map or model URL in a task, a webhook's `pbr_components`, a
  redirect): only HTTPS to a public host, unless the API base itself is on this computer (then
  loopback links are fine too: an emulator serves its own files). A service must not be able to
  make us fetch from this computer's other ports or from the local network. Names are checked
  here; the address a name resolves to is checked again right after connecting
  (`inflight.peer_problem`), so a public-looking name that points home is refused as well.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# Names that never mean a public host.
_PRIVATE_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".lan", ".home",
                     ".home.arpa", ".corp", ".localdomain", ".test", ".invalid")
_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+")


def is_loopback_host(host: str) -> bool:
    host = (host or "").strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, shared, …)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def host_problem(host: str) -> str:
    """"" when `host` names a public host, else what it is instead (a few words)."""
    name = (host or "").strip("[]").lower().rstrip(".")
    if not name:
        return "no host"
    if is_loopback_host(name):
        return "this computer"
    ip = _ip(name)
    if ip is not None:
        return "" if is_public_address(ip) else "a private network address"
    if "." not in name or name.endswith(_PRIVATE_SUFFIXES):
        return "a local network name"
    labels = name.split(".")
    if labels[-1].isdigit() or all(_NUMBER.fullmatch(label) for label in labels):
        # 2130706433, 0x7f.1, 127.1: numbers the resolver reads as addresses, never names.
        return "an address in disguise"
    return ""


def link_problem(url: str, *, allow_loopback: bool, label: str, what: str) -> str:
    """"" if the extension may fetch `url` (a link a server sent), else one line why not."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (a bad port raises here)
    except ValueError:
        return f"The {what} link from {label} is not a valid address"
    if parts.scheme not in ("http", "https") or not host:
        return f"The {what} link from {label} is not a web address"
    if allow_loopback and is_loopback_host(host):
        return ""
    problem = host_problem(host)
    if problem:
        return (f"The {what} link from {label} points to {problem} ({host}), not to a public "
                f"host; it was not fetched")
    if parts.scheme != "https":
        return f"The {what} link from {label} is not an https:// address; it was not fetched"
    return ""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
