"""Markdown and CSV tables: the one writer every report and benchmark uses.

A table is a list of row dicts and the keys to show as columns. Each cell is
formatted by :func:`format_value` with the column's format: a format spec
(``'.3f'``) or a function of the whole row (for cells built from several
keys, such as a value with its spread).
"""
import csv
import math
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

#: What a missing value (None or NaN) is shown as.
MISSING = '–'

Format = Union[str, Callable[[Mapping], str]]


def format_value(value, spec: str = '.3f') -> str:
    """A float formatted with ``spec`` (each element of a tuple, joined by
    ' / '); other values as they print; None and NaN are :data:`MISSING`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, tuple):
        return ' / '.join(format_value(v, spec) for v in value)
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _cell(row: Mapping, column: str, fmt: Optional[Format],
          default: str) -> str:
    if callable(fmt):
        return fmt(row)
    return format_value(row.get(column), fmt or default)


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str], *,
                   headers: Optional[Dict[str, str]] = None,
                   formats: Optional[Dict[str, Format]] = None,
                   right: Sequence[str] = (),
                   default: str = '.3f') -> str:
    """A markdown table of ``rows``.

    Args:
        columns: the row keys shown, in order.
        headers: column titles (default: the key).
        formats: per column, a format spec or a function of the row.
        right: columns aligned right (numbers).
        default: the format spec of the other columns.
    """
    headers = headers or {}
    formats = formats or {}
    lines = ['| ' + ' | '.join(headers.get(c, c) for c in columns) + ' |',
             '|' + '|'.join('---:' if c in right else '---'
                            for c in columns) + '|']
    for row in rows:
        lines.append('| ' + ' | '.join(
            _cell(row, c, formats.get(c), default) for c in columns) + ' |')
    return '\n'.join(lines)


def write_csv(rows: Sequence[Mapping], path: str,
              columns: Sequence[str]) -> None:
    """``rows`` as CSV (raw values; empty where missing)."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(['' if row.get(c) is None else row.get(c)
                             for c in columns])


def emit_report(text: str, out: Optional[str] = None) -> None:
    """Print a markdown report and, with ``out``, save it."""
    print('\n' + text)
    if out:
        with open(out, 'w') as f:
            f.write(text + '\n')
