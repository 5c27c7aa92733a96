"""Passwords are masked in URLs, conninfo strings and free text."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from tradedb import ConfigError
from tradedb.masking import mask_secrets, mask_url


def test_mask_url() -> None:
    assert mask_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_mask_conninfo() -> None:
    assert mask_secrets("host=h password=secret dbname=x") == "host=h password=*** dbname=x"
    assert mask_secrets("host=h password='se cret' user=u") == "host=h password=*** user=u"


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=4, max_size=40))
def test_any_password_is_masked_in_a_url(password: str) -> None:
    url = f"postgresql://trader:{quote(password, safe='')}@db.example:5432/trading"
    masked = mask_url(url)
    assert (
        quote(password, safe="")
        not in masked.replace("trader", "")
        .replace("db.example", "")
        .replace("trading", "")
        .replace("5432", "")
        .replace("postgresql", "")
        or len(quote(password, safe="")) < 4
    )
    assert masked == "postgresql://trader:***@db.example:5432/trading"


def test_errors_mask_their_message() -> None:
    assert "s3cret" not in ConfigError("cannot use postgresql://a:s3cret@h/d").message
