"""Start the monitor and the gate together, optionally with rviz.

Example::

    ros2 launch vae_ood_monitor bringup_launch.py model_path:=/path/model.vood \
        image_topics:='[camera/image_raw]' rviz:=true
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node


def generate_launch_description():
    """Describe monitor + gate (+ rviz) and the launch arguments they share."""
    share = get_package_share_directory('vae_ood_monitor')
    arguments = [
        DeclareLaunchArgument('model_path', description='Path of the .vood model bundle.'),
        DeclareLaunchArgument('image_topics', default_value='',
                              description='YAML list of camera topics to monitor (default: '
                              "the monitor params file's)."),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of both nodes and their topics.'),
        DeclareLaunchArgument('cmd_vel_in', default_value='cmd_vel_nav',
                              description='Velocity commands from the controller.'),
        DeclareLaunchArgument('cmd_vel_out', default_value='cmd_vel',
                              description='Gated velocity commands to the base.'),
        DeclareLaunchArgument('stamped', default_value='', choices=['', 'true', 'false'],
                              description='TwistStamped (true) or Twist (false) commands '
                              "(default: the gate params file's)."),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=['true', 'false'],
                              description='Use /clock (bag replay) instead of the wall clock.'),
        DeclareLaunchArgument('rviz', default_value='false', choices=['true', 'false'],
                              description='Also start rviz2 with the monitor view.'),
        DeclareLaunchArgument('monitor_params_file',
                              default_value=os.path.join(share, 'config', 'monitor.yaml'),
                              description='YAML file with the ood_monitor parameters.'),
        DeclareLaunchArgument('gate_params_file',
                              default_value=os.path.join(share, 'config', 'gate.yaml'),
                              description='YAML file with the ood_gate parameters.'),
    ]
    monitor = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'monitor_launch.py')),
        launch_arguments={
            'model_path': LaunchConfiguration('model_path'),
            'image_topics': LaunchConfiguration('image_topics'),
            'namespace': LaunchConfiguration('namespace'),
            'params_file': LaunchConfiguration('monitor_params_file'),
            'use_sim_time': LaunchConfiguration('use_sim_time'),
            # rviz shows the debug image; without rviz the params file decides
            'publish_debug_image': PythonExpression(
                ["'true' if '", LaunchConfiguration('rviz'), "' == 'true' else ''"]),
        }.items())
    gate = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'gate_launch.py')),
        launch_arguments={
            'namespace': LaunchConfiguration('namespace'),
            'params_file': LaunchConfiguration('gate_params_file'),
            'cmd_vel_in': LaunchConfiguration('cmd_vel_in'),
            'cmd_vel_out': LaunchConfiguration('cmd_vel_out'),
            'stamped': LaunchConfiguration('stamped'),
            'use_sim_time': LaunchConfiguration('use_sim_time'),
        }.items())
    rviz = Node(
        package='rviz2', executable='rviz2', name='rviz2', output='screen',
        arguments=['-d', os.path.join(share, 'config', 'vae_ood_monitor.rviz')],
        parameters=[{'use_sim_time': LaunchConfiguration('use_sim_time')}],
        condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription(arguments + [monitor, gate, rviz])
