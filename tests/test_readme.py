"""The README's scheme table is the one the code uses."""
import re

from mmbcn.schemes import scheme_table_markdown
from repo import REPO


def test_readme_scheme_table_is_the_code_table():
    text = open(f'{REPO}/README.md', encoding='utf-8').read()
    found = re.search(r'<!-- scheme table -->\n(.*?)<!-- end scheme table -->',
                      text, re.S)
    assert found, 'README.md has no <!-- scheme table --> markers'
    expected = scheme_table_markdown()
    assert found.group(1) == expected, (
        'the README scheme table differs from mmbcn.schemes.SCHEMES; paste '
        'the output of `python -c "from mmbcn.schemes import '
        'scheme_table_markdown as t; print(t(), end=\'\')"` between the '
        'markers:\n' + expected)
