"""Start the velocity gate between a controller and the robot base.

Example::

    ros2 launch vae_ood_monitor gate_launch.py cmd_vel_in:=cmd_vel_nav cmd_vel_out:=cmd_vel
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    """Describe the gate node and its launch arguments."""
    default_params = os.path.join(get_package_share_directory('vae_ood_monitor'), 'config',
                                  'gate.yaml')
    arguments = [
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML file with the ood_gate parameters.'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the node and its topics.'),
        DeclareLaunchArgument('cmd_vel_in', default_value='cmd_vel_nav',
                              description='Velocity commands from the controller (input).'),
        DeclareLaunchArgument('cmd_vel_out', default_value='cmd_vel',
                              description='Gated velocity commands to the base (output).'),
        DeclareLaunchArgument('alert_topic', default_value='ood/alert',
                              description="The monitor's aggregate alert topic."),
        DeclareLaunchArgument('stamped', default_value='', choices=['', 'true', 'false'],
                              description='TwistStamped (true) or Twist (false) commands '
                              "(default: the params file's)."),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=['true', 'false'],
                              description='Use /clock (bag replay) instead of the wall clock.'),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_gate_node)])


def _gate_node(context):
    """Build the node; a ``stamped`` left empty keeps the params file's value."""
    overrides = {'use_sim_time': LaunchConfiguration('use_sim_time')}
    if LaunchConfiguration('stamped').perform(context):
        overrides['stamped'] = LaunchConfiguration('stamped')
    return [Node(
        package='vae_ood_monitor', executable='gate_node', name='ood_gate',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'), overrides],
        remappings=[('cmd_vel_in', LaunchConfiguration('cmd_vel_in')),
                    ('cmd_vel_out', LaunchConfiguration('cmd_vel_out')),
                    ('ood/alert', LaunchConfiguration('alert_topic'))],
    )]
