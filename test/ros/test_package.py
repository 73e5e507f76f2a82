"""The ament_python package: package.xml dependencies, installed files, executables."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path
import sys
from unittest import mock
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = 'vae_ood_monitor'
# Python modules that are not ROS packages, with the rosdep keys that provide them.
NOT_ROS = {'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'onnxruntime': None}


def _manifest() -> ElementTree.Element:
    return ElementTree.parse(ROOT / 'package.xml').getroot()


def _depends(kind: str) -> set[str]:
    return {e.text.strip() for e in _manifest().iter(kind) if e.text}


def _imported_modules(paths: list[Path]) -> set[str]:
    modules = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split('.')[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split('.')[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != PACKAGE
            and m != '__future__'}


def _launched_packages(paths: list[Path]) -> set[str]:
    packages = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == 'package' and isinstance(
                    node.value, ast.Constant):
                packages.add(node.value.value)
    return packages


def test_package_xml_is_format_3_with_required_elements() -> None:
    root = _manifest()
    assert root.tag == 'package' and root.get('format') == '3'
    assert 'package_format3.xsd' in (ROOT / 'package.xml').read_text().splitlines()[1]
    for tag in ('name', 'version', 'description', 'maintainer', 'license'):
        assert root.find(tag) is not None and root.find(tag).text.strip(), tag
    assert root.find('name').text == PACKAGE
    assert root.find('maintainer').get('email')
    assert root.find('export/build_type').text == 'ament_python'


def test_every_ros_import_of_nodes_and_launch_files_is_an_exec_depend() -> None:
    sources = sorted((ROOT / PACKAGE / 'ros').glob('*.py')) + sorted(
        (ROOT / 'launch').glob('*_launch.py'))
    imported = _imported_modules(sources)
    assert {'rclpy', 'launch', 'launch_ros', 'sensor_msgs'} <= imported  # the check sees them
    declared = _depends('exec_depend') | _depends('depend')
    missing = {m for m in imported if m not in NOT_ROS and m not in declared}
    assert not missing, f'imported but not declared as exec_depend: {sorted(missing)}'
    for module, key in NOT_ROS.items():
        if module in imported and key:
            assert key in declared, key
    launched = _launched_packages(sorted((ROOT / 'launch').glob('*_launch.py')))
    assert launched <= declared | {PACKAGE}, launched - declared


def test_test_dependencies_for_linters_and_launch_tests() -> None:
    assert {'ament_copyright', 'ament_flake8', 'ament_pep257', 'ament_xmllint',
            'launch_testing', 'launch_testing_ros', 'python3-pytest'} <= _depends('test_depend')


@pytest.fixture(scope='module')
def setup_kwargs() -> dict[str, object]:
    captured: dict[str, object] = {}
    source = (ROOT / 'setup.py').read_text()
    with mock.patch('setuptools.setup', lambda **kwargs: captured.update(kwargs)):
        cwd = Path.cwd()
        try:
            import os
            os.chdir(ROOT)
            exec(compile(source, 'setup.py', 'exec'), {'__name__': '__main__'})
        finally:
            os.chdir(cwd)
    return captured


def test_setup_installs_marker_manifest_launch_config_and_rviz(setup_kwargs: dict) -> None:
    installed = {str(Path(d) / Path(f).name) for d, files in setup_kwargs['data_files']
                 for f in files}
    share = f'share/{PACKAGE}'
    expected = {f'share/ament_index/resource_index/packages/{PACKAGE}', f'{share}/package.xml'}
    expected |= {f'{share}/launch/{p.name}' for p in (ROOT / 'launch').glob('*_launch.py')}
    expected |= {f'{share}/config/{p.name}' for p in (ROOT / 'config').iterdir()
                 if p.suffix in ('.yaml', '.rviz')}
    assert {f'{share}/launch/{n}' for n in ('monitor_launch.py', 'gate_launch.py',
                                            'bringup_launch.py', 'replay_launch.py')} <= expected
    assert f'{share}/config/vae_ood_monitor.rviz' in expected
    assert expected <= installed, expected - installed
    assert (ROOT / 'resource' / PACKAGE).is_file()


def test_ros2_run_executables(setup_kwargs: dict) -> None:
    scripts = setup_kwargs['entry_points']['console_scripts']
    names = {s.split('=')[0].strip(): s.split('=')[1].strip() for s in scripts}
    assert names['monitor_node'] == f'{PACKAGE}.ros.monitor_node:main'
    assert names['gate_node'] == f'{PACKAGE}.ros.gate_node:main'
    config = configparser.ConfigParser()
    config.read(ROOT / 'setup.cfg')
    assert config['develop']['script_dir'] == f'$base/lib/{PACKAGE}'
    assert config['install']['install_scripts'] == f'$base/lib/{PACKAGE}'
    assert 'tests_require' not in setup_kwargs and 'test' in setup_kwargs['extras_require']
