"""Real ROS 2 nodes under test: node processes and an in-process client on a private domain.

Imported only by tests that have rclpy (the ``ros`` extra's Jazzy wheels). Each
:class:`RosGraph` takes a ROS domain of its own, so tests never hear each other's nodes or
leftovers; nodes run as real processes started with ``--ros-args`` as a user would start them
(``ros2 launch`` is not available from PyPI).
"""

from __future__ import annotations

import array
import itertools
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np
import pytest

# importing this module skips the importing test module where the ros extra is missing
rclpy = pytest.importorskip('rclpy', reason='the ros extra (ROS 2 Jazzy wheels) is not installed')
# the ROS imports can only follow the skip; the tests take their message types from here
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402, I100
from geometry_msgs.msg import Twist, TwistStamped  # noqa: E402, I100
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Bool, Float32, Float32MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

__all__ = ['BEST_EFFORT', 'RELIABLE', 'Bool', 'CompressedImage', 'DiagnosticArray', 'Float32',
           'Float32MultiArray', 'Image', 'NodeProcess', 'RosGraph', 'String', 'Trigger', 'Twist',
           'TwistStamped', 'compressed_msg', 'image_msg', 'slow_bundle']

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'config'
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
#: How long a wait may take before it counts as failed: a node process starting on a loaded
#: 2-core machine (rclpy, DDS discovery, a model) took over 10 s once. A wait that succeeds
#: returns at once, so only a failing test pays it.
STARTUP_S = 30.0
_DOMAINS = itertools.count()


def _domain() -> int:
    """A ROS domain id of this test process (pid-spread, so parallel runs do not collide)."""
    return 10 + (os.getpid() % 21 * 10 + next(_DOMAINS)) % 210


def image_msg(rgb: np.ndarray, encoding: str = 'rgb8', stamp_ns: int | None = None) -> Any:
    """A sensor_msgs/Image of an RGB uint8 frame (rgb8, or bgr8 with the planes swapped)."""
    msg = Image()
    frame = rgb[..., ::-1] if encoding == 'bgr8' else rgb
    msg.height, msg.width = frame.shape[:2]
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, frame.shape[1] * 3
    msg.data = array.array('B', np.ascontiguousarray(frame).tobytes())
    if stamp_ns is not None:
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def compressed_msg(rgb: np.ndarray) -> Any:
    """A sensor_msgs/CompressedImage (PNG) of an RGB uint8 frame."""
    import cv2

    msg = CompressedImage()
    msg.format = 'png'
    ok, data = cv2.imencode('.png', np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    msg.data = array.array('B', data.tobytes())
    return msg


class NodeProcess:
    """One node executable as a child process; its output is kept for the assertions."""

    def __init__(self, module: str, domain: int, args: list[str], log: Path) -> None:
        env = {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'PYTHONUNBUFFERED': '1',
               'RCUTILS_COLORIZED_OUTPUT': '0'}
        self.log_path = log
        self._log = log.open('wb')
        self.process = subprocess.Popen([sys.executable, '-m', module, '--ros-args', *args],
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        """Send ``sig`` and wait; return the exit code (killed after ``timeout``: -9)."""
        if self.alive():
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        """Everything the node printed so far."""
        return self.log_path.read_text(errors='replace')

    def rss_kb(self) -> int:
        """Resident memory of the process (kB, from /proc)."""
        for line in Path(f'/proc/{self.pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
        raise AssertionError('no VmRSS')


class RosGraph:
    """A private ROS domain: node processes plus a client node spun in this process."""

    def __init__(self, tmp: Path) -> None:
        self.domain = _domain()
        self.tmp = tmp
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain)
        self.node = rclpy.create_node(f'tester_{os.getpid()}', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.processes: list[NodeProcess] = []

    def start(self, module: str, *, params_file: str | None = None,
              params: dict[str, str] | None = None, extra: list[str] | None = None
              ) -> NodeProcess:
        """Start ``python -m module --ros-args --params-file F -p key:=value ...``."""
        args: list[str] = []
        if params_file:
            args += ['--params-file', str(CONFIG / params_file)]
        for key, value in (params or {}).items():
            args += ['-p', f'{key}:={value}']
        args += extra or []
        process = NodeProcess(module, self.domain, args,
                              self.tmp / f'{module.rsplit(".", 1)[-1]}_{len(self.processes)}.log')
        self.processes.append(process)
        return process

    def monitor(self, model: Path, **params: object) -> NodeProcess:
        """Start monitor_node with config/monitor.yaml, the model and reliable QoS overrides."""
        values = {'model_path': str(model), 'qos_reliability': 'reliable',
                  **{k: _ros_value(v) for k, v in params.items()}}
        return self.start('vae_ood_monitor.ros.monitor_node', params_file='monitor.yaml',
                          params=values)

    def gate(self, **params: object) -> NodeProcess:
        """Start gate_node with config/gate.yaml and overrides."""
        return self.start('vae_ood_monitor.ros.gate_node', params_file='gate.yaml',
                          params={k: _ros_value(v) for k, v in params.items()})

    def subscribe(self, msg_type: Any, topic: str, qos: QoSProfile = RELIABLE) -> list[Any]:
        """Collect every message on ``topic`` into the returned list (as they are spun in)."""
        received: list[Any] = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile = RELIABLE) -> Any:
        """A publisher of the client node."""
        return self.node.create_publisher(msg_type, topic, qos)

    def spin(self, seconds: float) -> None:
        """Spin the client for ``seconds``."""
        self.spin_until(lambda: False, seconds)

    def spin_until(self, condition: Callable[[], bool], timeout: float = STARTUP_S,
                   each: Callable[[], None] | None = None, period: float = 0.02) -> bool:
        """Spin until ``condition()`` holds (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if each is not None:
                each()
            self.executor.spin_once(timeout_sec=period)
            if condition():
                return True
        return False

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = STARTUP_S, *,
             attempts: int = 1) -> Any:
        """Call a service of a node under test; return its response (fails on timeout).

        ``wait_for_service`` returns once the server sees the client's requests, which can be
        before the client sees the server's responses: the first response of a fresh client is
        then lost on a loaded machine. Idempotent requests (parameters, state queries) pass
        ``attempts`` > 1 and are sent again after ``timeout / attempts`` without an answer.
        """
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
            for _ in range(attempts):
                future = client.call_async(request)
                if self.spin_until(future.done, timeout / attempts):
                    return future.result()
            raise AssertionError(f'{name} did not answer {attempts} request(s) in {timeout} s')
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node: str, **values: object) -> list[Any]:
        """Set parameters of ``node``; return the SetParametersResult of each."""
        from rcl_interfaces.srv import SetParameters

        request = SetParameters.Request()
        request.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        return list(self.call(SetParameters, f'/{node}/set_parameters', request,
                              attempts=3).results)

    def get_parameters(self, node: str, *names: str) -> list[Any]:
        """Current values of parameters of ``node``."""
        from rcl_interfaces.srv import GetParameters

        request = GetParameters.Request()
        request.names = list(names)
        values = self.call(GetParameters, f'/{node}/get_parameters', request, attempts=3).values
        return [Parameter.from_parameter_msg(_named(n, v)).value for n, v in zip(names, values)]

    def change_state(self, node: str, *, transition_id: int = 0, label: str = '') -> bool:
        """Request a lifecycle transition by id or label; return the response's success."""
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id, request.transition.label = transition_id, label
        return bool(self.call(ChangeState, f'/{node}/change_state', request).success)

    def state(self, node: str) -> str:
        """The lifecycle state label of ``node``."""
        from lifecycle_msgs.srv import GetState

        return str(self.call(GetState, f'/{node}/get_state', GetState.Request(),
                             attempts=3).current_state.label)

    def close(self) -> None:
        """Stop every node process still running and shut the client down."""
        for process in self.processes:
            process.stop()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _named(name: str, value: Any) -> Any:
    from rcl_interfaces.msg import Parameter as ParameterMsg

    msg = ParameterMsg()
    msg.name, msg.value = name, value
    return msg


def _ros_value(value: object) -> str:
    """A ``-p key:=value`` spelling of a Python value (YAML as rcl parses it)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_ros_value(v) for v in value) + ']'
    if isinstance(value, str):
        return f"'{value}'" if value == '' or ',' in value else value
    return repr(value)


def slow_bundle(path: Path, height: int = 120, width: int = 160, channels: int = 64) -> Path:
    """A calibrated bundle whose encoder takes milliseconds per frame (two 3x3 convolutions).

    For overload tests: a camera that sends frames far faster than the model runs.
    """
    from onnx import helper, numpy_helper, TensorProto

    from vae_ood_monitor.core.bundle import Bundle, save_bundle, sha256_hex
    from vae_ood_monitor.core.manifest import Manifest, ModelInfo, Partition
    from vae_ood_monitor.core.preprocess import InputSpec

    rng = np.random.default_rng(0)
    weights = {
        'w1': rng.normal(0, 0.2, (channels, 3, 3, 3)).astype(np.float32),
        'w2': rng.normal(0, 0.05, (channels, channels, 3, 3)).astype(np.float32),
        'head': rng.normal(0, 0.1, (channels, 8)).astype(np.float32),
        'sizes': np.array([4, 4], np.int64), 'axes': np.array([2, 3], np.int64)}
    nodes = [
        helper.make_node('Conv', ['image', 'w1'], ['c1'], pads=[1, 1, 1, 1]),
        helper.make_node('Relu', ['c1'], ['r1']),
        helper.make_node('Conv', ['r1', 'w2'], ['c2'], pads=[1, 1, 1, 1]),
        helper.make_node('ReduceMean', ['c2', 'axes'], ['pooled'], keepdims=0),
        helper.make_node('MatMul', ['pooled', 'head'], ['out']),
        helper.make_node('Split', ['out', 'sizes'], ['mu', 'logvar'], axis=1),
    ]
    graph = helper.make_graph(
        nodes, 'slow_encoder',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['batch', 3, height, width])],
        [helper.make_tensor_value_info('mu', TensorProto.FLOAT, ['batch', 4]),
         helper.make_tensor_value_info('logvar', TensorProto.FLOAT, ['batch', 4])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 8
    data = model.SerializeToString()
    partition = Partition('all', (0, 1, 2, 3), calibration_scores=np.linspace(0.0, 1.0, 200),
                          threshold=1e9)
    manifest = Manifest(name='slow', input=InputSpec(height, width),
                        model=ModelInfo(sha256=sha256_hex(data), latent_dim=4),
                        partitions=(partition,))
    return save_bundle(Bundle(manifest, data), path, force=True)
