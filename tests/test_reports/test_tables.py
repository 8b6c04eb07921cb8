"""The one markdown / CSV table writer of the reports and benchmarks."""
import csv
import math

from mmbcn.reports.tables import (MISSING, format_value, markdown_table,
                                  write_csv)


def test_format_value():
    assert format_value(0.12345) == '0.123'
    assert format_value(0.12345, '.1f') == '0.1'
    assert format_value(7) == '7'  # counts print as they are
    assert format_value('gn') == 'gn'
    assert format_value(None) == MISSING
    assert format_value(math.nan) == MISSING
    assert format_value((0.5, 0.25), '.2f') == '0.50 / 0.25'


def test_markdown_table_headers_formats_alignment():
    rows = [dict(name='a', ms=1.234, n=3, lo=0.9, hi=1.1),
            dict(name='b', ms=None, n=1, lo=1.0, hi=1.0)]
    text = markdown_table(
        rows, ('name', 'ms', 'n', 'range'), headers=dict(ms='time ms'),
        formats=dict(ms='.1f', range=lambda r: f"{r['lo']:.1f}-{r['hi']:.1f}"),
        right=('ms', 'n'))
    assert text.split('\n') == [
        '| name | time ms | n | range |',
        '|---|---:|---:|---|',
        '| a | 1.2 | 3 | 0.9-1.1 |',
        f'| b | {MISSING} | 1 | 1.0-1.0 |',
    ]


def test_csv_keeps_raw_values(tmp_path):
    path = tmp_path / 't.csv'
    write_csv([dict(a=0.123456, b=None), dict(a=2)], str(path), ['a', 'b'])
    with open(path) as f:
        assert list(csv.reader(f)) == [['a', 'b'], ['0.123456', ''],
                                       ['2', '']]
