"""The configuration page names every environment variable the settings read, so none goes undocumented."""

from __future__ import annotations

from tests.conftest import REPO
from tradedb.settings import Settings


def test_every_variable_the_settings_read_is_documented() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    variables = []
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        variables += list(getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else []))
    assert len(variables) > 50  # the aliases were found
    assert [v for v in variables if f"`{v}`" not in page] == []
