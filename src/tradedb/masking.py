"""Masking of passwords in URLs, conninfo strings and free text."""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host -> scheme://user:***@host (the password may hold any character but '@').
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)(?P<tail>@)")
# password=secret or password='se cret' in conninfo strings and query parameters.
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|sslpassword|PGPASSWORD)\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&]+)",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every password in a URL or ``password=`` pair replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def mask_url(url: str) -> str:
    """Return ``url`` with its password masked."""
    return mask_secrets(url)
