"""Spreadsheet cells: text that Excel or WPS would run as a formula is quoted on CSV export.

A grid named `=HYPERLINK("http://…","x")` becomes a live link when an exported CSV is opened.
Text cells starting with = + - @ (or a tab or carriage return) get a leading `'`, which the
spreadsheet shows as text; a CSV import takes exactly that quote off again, so our own export
round-trips (README: 导入与导出). Numbers are never text cells and stay as they are.
"""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def quoted_cell(value: Any) -> Any:
    """A text cell as it is written to CSV; other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def unquoted_cell(value: Any) -> Any:
    """A text cell as read from CSV: the quote `quoted_cell` added is removed."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value


def quoted_table(table: Any) -> Any:
    """A pyarrow table with `quoted_cell` applied to every text column and to the header (for
    CSV writers). Dictionary and binary columns are written as text, so they are text here."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.rename_columns([quoted_cell(name) for name in table.column_names])
    for position, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            column = pc.cast(column, pa.string(), safe=False)  # CSV writes bytes as text
        if pa.types.is_large_string(column.type):
            column = pc.cast(column, pa.string())
        if not pa.types.is_string(column.type):
            continue
        table = table.set_column(
            position, pa.field(table.field(position).name, column.type), column
        )
        risky = pc.fill_null(pc.match_substring_regex(column, r"^[=+\-@\t\r]"), False)
        if pc.any(risky).as_py():
            quoted = pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
            table = table.set_column(position, table.field(position), quoted)
    return table
