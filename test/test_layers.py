"""Imports point one way: core <- data <- train, evaluate, replay, ros <- cli.

core is the robot runtime (numpy, onnxruntime, OpenCV); data reads and generates frames; train
(torch), evaluate, replay (rosbags) and ros (rclpy) build on those two and not on each other
(``ALLOWED`` below); cli sits on top.

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
    'train': {'core', 'data'},
    'evaluate': {'core', 'data'},
    'replay': {'core', 'data'},
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
