"""Build script of the vae_ood_monitor ament_python package (also an ordinary pip package)."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'vae_ood_monitor'

# The robot runtime: decoding, preprocessing, ONNX inference, scoring and the sequential test.
RUNTIME = [
    'numpy>=1.24',
    'onnxruntime>=1.17',
    'opencv-python-headless>=4.8',
]
# Workstation tools without torch: evaluation metrics, plots, progress bars, calibration
# settings files.
EVAL = [
    'matplotlib>=3.7',
    'pyyaml>=6',
    'scikit-learn>=1.3',
    'tqdm>=4.66',
]
# Reading and writing ROS 2 bags without a ROS installation. mcap: rosbags refuses an MCAP file
# without its footer (a recording cut short by a crash or a full disk); replay then recovers the
# messages up to the damage with the mcap package's streaming reader.
REPLAY = ['mcap>=1.1', 'rosbags>=0.11,<0.12'] + EVAL
# Training, distillation, pruning, quantization and ONNX export. torch is pinned through
# constraints.txt (see README): an unpinned torch pulls multi-GB CUDA builds.
TRAIN = [
    'onnx>=1.16',
    'onnxscript>=0.2',
    'torch>=2.3',
] + EVAL
# A real ROS 2 runtime for the node tests, without a ROS installation: PyPI's wheels of ROS 2
# Jazzy's core packages (rclpy with Fast DDS, the message and service types the nodes use;
# ~150 MB, CPython 3.11 on x86_64 Linux only). Pinned: the tested versions. On a robot the ROS
# distribution provides these instead.
_ON_ROS_WHEELS = "; python_version == '3.11' and platform_system == 'Linux' and " \
    "platform_machine == 'x86_64'"
ROS = [pin + _ON_ROS_WHEELS for pin in (
    'ros-jazzy-rclpy==7.1.6',
    'ros-jazzy-rmw-fastrtps-cpp==8.4.3',
    'ros-jazzy-std-msgs==5.3.6',
    'ros-jazzy-sensor-msgs==5.3.6',
    'ros-jazzy-geometry-msgs==5.3.6',
    'ros-jazzy-diagnostic-msgs==5.3.6',
    'ros-jazzy-lifecycle-msgs==2.0.3',
    'ros-jazzy-std-srvs==5.3.6',
)]
# Replaying a fleet's bag archive on a Ray cluster (`vae-ood replay MODEL BAG... --ray`): the
# established engine for batch work across machines; the single-machine path needs nothing.
FLEET = ['ray>=2.9'] + REPLAY
TEST = [
    'flake8>=7',
    'flake8-builtins',
    'flake8-comprehensions',
    'flake8-docstrings',
    'flake8-import-order',
    'flake8-quotes',
    'hypothesis>=6.100',
    'mcap>=1.1',
    'mypy>=1.10',
    'pep8-naming',
    'pytest>=7',
    'pyyaml>=6',
]

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        (os.path.join('share', PACKAGE, 'launch'), glob('launch/*_launch.py')),
        (os.path.join('share', PACKAGE, 'config'),
         glob('config/*.yaml') + glob('config/*.rviz')),
    ],
    python_requires='>=3.10',
    install_requires=RUNTIME,
    extras_require={
        'eval': EVAL,
        'replay': REPLAY,
        'train': TRAIN,
        'test': TEST,
        'ros': ROS,
        'fleet': FLEET,
        'all': sorted(set(REPLAY + TRAIN)),
    },
    zip_safe=True,
    maintainer='vae_ood_monitor maintainers',
    maintainer_email='maintainers@users.noreply.r-seed-f422e417.example',
    description='VAE-based out-of-distribution safety monitor for camera-driven ROS 2 robots.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'vae-ood = vae_ood_monitor.cli.main:main',
            'monitor_node = vae_ood_monitor.ros.monitor_node:main',
            'gate_node = vae_ood_monitor.ros.gate_node:main',
        ],
    },
)
