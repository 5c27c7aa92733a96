"""Reference data: the symbol service, symbology across conventions and time, index membership, fundamentals,
and the ingest log.

``db.securities`` (:class:`Securities`), ``db.fundamentals`` (:class:`Fundamentals`) and ``db.loads``
(:class:`Loads`), sync and async. Listing files are parsed by :mod:`tradedb.reference.listings`; symbology's
checks and the resolving statement are in :mod:`tradedb.reference.symbology`.
"""

from __future__ import annotations

from tradedb.reference.fundamentals import Fundamentals
from tradedb.reference.fundamentals_async import AsyncFundamentals
from tradedb.reference.listings import Listing, ListingFile, ListingReport, Membership, read, same_company
from tradedb.reference.loads import Loads
from tradedb.reference.loads_async import AsyncLoads, RunningLoad
from tradedb.reference.securities import Securities
from tradedb.reference.securities_async import AsyncSecurities
from tradedb.reference.symbology import Assignment

__all__ = [
    "Assignment",
    "AsyncFundamentals",
    "AsyncLoads",
    "AsyncSecurities",
    "Fundamentals",
    "Listing",
    "ListingFile",
    "ListingReport",
    "Loads",
    "Membership",
    "RunningLoad",
    "Securities",
    "read",
    "same_company",
]
