"""Accounts without I/O: what an account id, name and base currency may be, and why an account is not visible."""

from __future__ import annotations

import re
from typing import Any

from tradedb.errors import NotFoundError, ValidationError

#: The database's own check (ck_accounts_account_id_format): letters, digits and ``_ . : -``, 1 to 64 characters.
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

#: ISO 4217 currency codes in use (2025 list: ZWG replaced ZWL, SLE replaced SLL, XCG joins ANG during the switch).
_CODES = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD "
    "CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP "
    "GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK "
    "LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR "
    "PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL "
    "THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB "
    "XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG "
)
ISO_4217 = frozenset(_CODES.split())


def check_account(value: Any) -> str:
    """Return a valid account id, or raise ValidationError."""
    if not isinstance(value, str) or not ACCOUNT_ID.fullmatch(value):
        raise ValidationError(f"account_id must be 1 to 64 letters, digits or the characters _ . : - ; got {value!r}")
    return value


def check_currency(value: Any) -> str:
    """Return an ISO 4217 currency code, or raise ValidationError."""
    if not isinstance(value, str) or value not in ISO_4217:
        raise ValidationError(f"base_currency must be an ISO 4217 currency code such as USD or EUR; got {value!r}")
    return value


def check_name(value: Any) -> str:
    """Return a non-empty account name, or raise ValidationError."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"name must be a non-empty string, got {value!r}")
    return value.strip()


def unknown_account(account_id: str, scope: str | None, hidden_by_rls: bool) -> NotFoundError:
    """The error for an account a statement did not find, saying why when row-level security hid it."""
    if hidden_by_rls and not scope:
        return NotFoundError(
            f"account {account_id!r} is not visible: no account scope is set, and row-level security hides every "
            f"account from this role; connect(..., account={account_id!r}) or use "
            f"db.transaction(account={account_id!r})"
        )
    if hidden_by_rls and scope != account_id:
        return NotFoundError(f"account {account_id!r} is outside this connection's account scope ({scope!r})")
    return NotFoundError(f"unknown account {account_id!r}")
