"""The one way a URL or an error text reaches a log, a report or a message: credentials masked.

Used for database URLs (cluster.db), .osu download templates (sr.fetch) and the performance service's
URL (sr.perf); `mask_url` says what each kind keeps.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote, urlsplit

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/:@\s]*:)(?P<password>[^@\s]*)@", re.IGNORECASE)
_DATABASE_SCHEME = re.compile(r"(mysql|mariadb|sqlite|postgres|postgresql)(\+\w+)?\Z", re.IGNORECASE)
_SECRET_KEYS = re.compile(r"pass|pwd|token|secret|key|sig|auth|credential|session", re.IGNORECASE)


def mask_url(url: object) -> str:
    """`url` (a string, an sqlalchemy.URL or an httpx.URL) with its credentials masked.

    A database URL (mysql, mariadb, sqlite, postgresql, with or without a driver) keeps its user and
    its query, but not its password nor the value of a query parameter that can carry a secret:
    "mysql+pymysql://backfill:s3cret@db/akatsuki?charset=latin1" ->
    "mysql+pymysql://backfill:***@db/akatsuki?charset=latin1". Any other URL (the performance
    service, a download template, s3) loses its whole userinfo and query, where tokens travel:
    "http://alice:pw@perf:8665/x?token=t" -> "http://***@perf:8665/x?***".
    Never raises: text that does not parse as a URL is masked by pattern (`scheme://user:***@`).
    """
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return _URL_PASSWORD.sub(r"\g<head>***@", text)
    database = bool(_DATABASE_SCHEME.match(parts.scheme))
    masked = text
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        if not database:
            masked = masked.replace(parts.netloc, "***@" + host, 1)
        elif ":" in userinfo:
            masked = masked.replace(parts.netloc, userinfo.split(":", 1)[0] + ":***@" + host, 1)
    if parts.query:
        query = "&".join(_mask_parameter(pair) for pair in parts.query.split("&")) if database else "***"
        masked = masked.replace("?" + parts.query, "?" + query, 1)
    return masked


def _mask_parameter(pair: str) -> str:
    name, sep, value = pair.partition("=")
    return f"{name}=***" if sep and value and _SECRET_KEYS.search(name) else pair


def mask_text(text: str, *urls: object) -> str:
    """`text` with credentials removed: every `scheme://user:password@` password, and the password of
    each given URL wherever it appears (as written, and percent-encoded), become `***`.

    Passwords shorter than 4 characters are only masked inside URLs (replacing every occurrence of a
    one-letter password would garble the text).
    """
    out = _URL_PASSWORD.sub(r"\g<head>***@", str(text))
    for url in urls:
        if url is None:
            continue
        raw = url.render_as_string(hide_password=False) if hasattr(url, "render_as_string") else str(url)
        forms: set[str] = set()
        for candidate in _passwords(raw):
            if len(candidate) >= 4:
                forms |= {candidate, quote(candidate, safe=""), quote_plus(candidate)}
        for form in sorted(forms, key=len, reverse=True):
            out = out.replace(form, "***")
    return out


def _passwords(url: str) -> set[str]:
    """The password of `url` as written and percent-decoded (empty when it has none)."""
    found: set[str] = set()
    match = _URL_PASSWORD.search(url)
    if match and match.group("password"):
        found |= {match.group("password"), unquote(match.group("password"))}
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        found |= {password, unquote(password)}
    return found
