"""The ament linters colcon runs on ROS machines (skipped where they are not installed).

`make lint` runs the same flake8 rules everywhere (see .flake8); these tests add the ROS
tool versions: ament_flake8, ament_pep257 and ament_xmllint (package.xml against its schema).
There is no ament_copyright test: source files carry no per-file licence headers; the licence
is declared once in package.xml and setup.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [str(ROOT / 'vae_ood_monitor'), str(ROOT / 'launch'), str(ROOT / 'test')]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    main = pytest.importorskip('ament_flake8.main', reason='ament_flake8 is not installed')
    rc, errors = main.main_with_errors(argv=['--config', str(ROOT / '.flake8')] + SOURCES)
    assert rc == 0, f'{len(errors)} flake8 errors:\n' + '\n'.join(errors)


@pytest.mark.pep257
@pytest.mark.linter
def test_pep257() -> None:
    main = pytest.importorskip('ament_pep257.main', reason='ament_pep257 is not installed')
    assert main.main(argv=SOURCES[:2]) == 0, 'pep257 docstring errors (see output)'


@pytest.mark.xmllint
@pytest.mark.linter
def test_xmllint() -> None:
    main = pytest.importorskip('ament_xmllint.main', reason='ament_xmllint is not installed')
    assert main.main(argv=[str(ROOT / 'package.xml')]) == 0, 'package.xml does not validate'
