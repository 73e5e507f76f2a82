"""Launch test: the monitor node on real ROS 2 (skipped where rclpy/launch_testing are absent).

Starts monitor_node with a tiny bundle calibrated so that the published frames alert, publishes
camera frames, a malformed frame and checks alerts, scores, KL and diagnostics; the node must
survive the bad frame and exit cleanly.
"""

from __future__ import annotations

import tempfile
import unittest

import pytest

try:  # never skip at module level: the launch_testing plugin imports this file (docs/ros2.md)
    from diagnostic_msgs.msg import DiagnosticArray
    import launch
    import launch_ros.actions
    import launch_testing
    import launch_testing.actions
    import launch_testing.asserts
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, Float32, Float32MultiArray
    HAVE_ROS = True
except ImportError:
    HAVE_ROS = False

if HAVE_ROS:
    from launch_helpers import image_message, road_frames, spin_until
    from vood_testing import bundle_for_frames

    from vae_ood_monitor.core.bundle import save_bundle

    FRAMES = road_frames()

    @pytest.mark.launch_test
    def generate_test_description():
        """Start monitor_node on a bundle that flags the test frames."""
        folder = tempfile.mkdtemp(prefix='vood_launch_')
        model = save_bundle(bundle_for_frames(FRAMES, alert=True), f'{folder}/alerting.vood')
        node = launch_ros.actions.Node(
            package='vae_ood_monitor', executable='monitor_node', name='ood_monitor',
            output='screen',
            parameters=[{'model_path': str(model), 'image_topics': ['camera/image_raw'],
                         'decision': 'threshold', 'clear_frames': 1,
                         'diagnostics_period_s': 0.2, 'heartbeat_period_s': 0.1}])
        return launch.LaunchDescription([node, launch_testing.actions.ReadyToTest()]), {
            'monitor': node}

    class TestMonitorNode(unittest.TestCase):
        """Talk to the running node."""

        @classmethod
        def setUpClass(cls) -> None:
            rclpy.init()
            cls.node = rclpy.create_node('monitor_probe')

        @classmethod
        def tearDownClass(cls) -> None:
            cls.node.destroy_node()
            rclpy.shutdown()

        def test_frames_produce_alerts_scores_kl_and_diagnostics(self) -> None:
            got: dict[str, list] = {'alert': [], 'score': [], 'kl': [], 'agg': [], 'diag': []}
            node = self.node
            node.create_subscription(Bool, 'ood/camera_image_raw/alert',
                                     lambda m: got['alert'].append(m.data), 10)
            node.create_subscription(Float32, 'ood/camera_image_raw/score',
                                     lambda m: got['score'].append(m.data), 10)
            node.create_subscription(Float32MultiArray, 'ood/camera_image_raw/kl',
                                     lambda m: got['kl'].append(list(m.data)), 10)
            node.create_subscription(Bool, 'ood/alert', lambda m: got['agg'].append(m.data), 10)
            node.create_subscription(DiagnosticArray, '/diagnostics',
                                     lambda m: got['diag'].append(m), 10)
            pub = node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
            frames = iter(FRAMES * 50)
            ok = spin_until(node, lambda: len(got['score']) >= 5 and got['diag'], 30.0,
                            each=lambda: pub.publish(image_message(next(frames))))
            self.assertTrue(ok, f'no output from the monitor: {got}')
            self.assertTrue(all(got['alert']), 'the calibrated-to-alert bundle must alert')
            self.assertTrue(any(got['agg']))
            self.assertEqual(len(got['kl'][0]), 4)
            self.assertTrue(all(s > 0 for s in got['score']))
            names = [s.name for a in got['diag'] for s in a.status]
            self.assertTrue(any('camera_image_raw' in n for n in names), names)

        def test_bad_frame_is_counted_and_the_node_keeps_running(self) -> None:
            got: dict[str, list] = {'diag': [], 'score': []}
            node = self.node
            node.create_subscription(DiagnosticArray, '/diagnostics',
                                     lambda m: got['diag'].append(m), 10)
            node.create_subscription(Float32, 'ood/camera_image_raw/score',
                                     lambda m: got['score'].append(m.data), 10)
            pub = node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)

            def failed() -> bool:
                for array in got['diag']:
                    for status in array.status:
                        values = {kv.key: kv.value for kv in status.values}
                        if int(values.get('failed_ImageEncodingError', '0')) > 0:
                            return True
                return False

            self.assertTrue(spin_until(node, failed, 30.0, each=lambda: pub.publish(
                image_message(FRAMES[0], encoding='yuv420'))))
            count = len(got['score'])
            self.assertTrue(spin_until(node, lambda: len(got['score']) > count + 2, 30.0,
                                       each=lambda: pub.publish(image_message(FRAMES[1]))))

    @launch_testing.post_shutdown_test()
    class TestMonitorShutdown(unittest.TestCase):
        """The node exits cleanly."""

        def test_exit_code(self, proc_info) -> None:
            launch_testing.asserts.assertExitCodes(proc_info)
else:
    def test_monitor_launch_needs_ros() -> None:
        """Stand-in so the skip is visible where ROS 2 is not installed."""
        pytest.skip('rclpy / launch_testing are not installed (no ROS 2 environment)')
