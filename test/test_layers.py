"""Imports point one way: core <- data <- evaluate <- train, replay; core, data <- ros; all <- cli.

core is the robot runtime (numpy, onnxruntime, OpenCV); data reads and generates frames;
evaluate is the calibration-time and evaluation code (fitting, metrics, reports); train
(torch) and replay (rosbags) build on it, ros (rclpy) only on core and data; cli sits on top
(``ALLOWED`` below).

Read from the source with ``ast``, so lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vae_ood_monitor

PACKAGE = Path(vae_ood_monitor.__file__).parent
#: The layers each layer may import besides itself.
ALLOWED = {
    'core': set(),
    'data': {'core'},
    'evaluate': {'core', 'data'},
    'train': {'core', 'data', 'evaluate'},
    'replay': {'core', 'data', 'evaluate'},
    'ros': {'core', 'data'},
    'cli': {'core', 'data', 'train', 'evaluate', 'replay', 'ros'},
}


def imported_layers(path: Path) -> set[str]:
    """Layers of vae_ood_monitor that a module imports anywhere in its body."""
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split('.')
            if parts[0] == 'vae_ood_monitor' and len(parts) > 1 and parts[1] in ALLOWED:
                layers.add(parts[1])
    return layers


def test_every_layer_imports_only_the_layers_below_it() -> None:
    wrong = {}
    for layer, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / layer).rglob('*.py')):
            extra = imported_layers(path) - allowed - {layer}
            if extra:
                wrong[str(path.relative_to(PACKAGE))] = sorted(extra)
    assert wrong == {}


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / 'm.py'
    module.write_text('def f():\n    from vae_ood_monitor.evaluate.plots import plot_timeline\n'
                      'import vae_ood_monitor.ros.params\nfrom vae_ood_monitor import train\n')
    assert imported_layers(module) == {'evaluate', 'ros', 'train'}


def test_the_robot_runtime_loads_no_fitting_or_evaluation_code() -> None:
    import subprocess
    import sys

    code = ('import sys, vae_ood_monitor.core, vae_ood_monitor.core.flow; '
            'print(sorted({m.split(".")[0] if not m.startswith("vae_ood_monitor") else '
            '".".join(m.split(".")[:2]) for m in sys.modules}))')
    loaded = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True,
                            text=True).stdout
    for forbidden in ('sklearn', 'torch', 'rclpy', 'rosbags', 'matplotlib',
                      'vae_ood_monitor.evaluate', 'vae_ood_monitor.train',
                      'vae_ood_monitor.replay', 'vae_ood_monitor.ros'):
        assert f"'{forbidden}'" not in loaded, forbidden
    assert "'vae_ood_monitor.core'" in loaded


def test_scripts_import_only_the_package_and_libraries() -> None:
    """A script users run must work from an installed package, without the tests' helpers."""
    test_modules = {path.stem for path in (PACKAGE.parent / 'test').rglob('*.py')}
    wrong = {}
    for path in sorted((PACKAGE.parent / 'scripts').glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            tops = {name.split('.')[0] for name in names}
            if tops & (test_modules | {'test'}):
                wrong.setdefault(path.name, set()).update(tops & (test_modules | {'test'}))
    assert wrong == {}
