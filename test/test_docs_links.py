"""Every relative link in the README and docs/ points at a file (and heading) that exists."""

from __future__ import annotations

from pathlib import Path
import re

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').rglob('*.md'))]
LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)\)')


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, '-' for spaces."""
    found = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith('```'):
            in_code = not in_code
        if in_code or not line.startswith('#'):
            continue
        title = line.lstrip('#').strip().lower()
        found.add(re.sub(r'[^\w\- ]', '', title).replace(' ', '-'))
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r'```.*?```', '', page.read_text(), flags=re.S)  # code is not prose
    return [target for target in LINK.findall(text)
            if not re.match(r'[a-z]+:', target)]  # http:, https:, mailto:


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition('#')
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == '.md' and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f'{page.name}: broken links {broken}'


def test_the_checker_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / 'page.md'
    page.write_text('# A title\n\n[ok](#a-title) [gone](missing.md) [bad](#nowhere) '
                    '[web](https://example.org)\n```\n[code](ignored.md)\n```\n')
    assert links(page) == ['#a-title', 'missing.md', '#nowhere']
    assert anchors(page) == {'a-title'}
