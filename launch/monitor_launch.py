"""Start the OOD monitor node (lifecycle node that configures and activates itself).

Example::

    ros2 launch vae_ood_monitor monitor_launch.py model_path:=/path/model.vood \
        image_topics:='[front/image_raw]'
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    """Describe the monitor node and its launch arguments."""
    default_params = os.path.join(get_package_share_directory('vae_ood_monitor'), 'config',
                                  'monitor.yaml')
    arguments = [
        DeclareLaunchArgument('model_path', description='Path of the .vood model bundle '
                              '(written by `vae-ood export` and calibrated).'),
        DeclareLaunchArgument('flow_model_path', default_value='',
                              description='Optional flow bundle run beside model_path on the '
                              'same cameras, alerts ORed (default: none).'),
        DeclareLaunchArgument('image_topics', default_value='',
                              description='YAML list of camera topics; names ending in '
                              "/compressed are CompressedImage (default: the params file's)."),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='YAML file with the ood_monitor parameters.'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of the node and its topics.'),
        DeclareLaunchArgument('use_sim_time', default_value='false', choices=['true', 'false'],
                              description='Use /clock (bag replay) instead of the wall clock.'),
        DeclareLaunchArgument('publish_debug_image', default_value='',
                              choices=['', 'true', 'false'],
                              description='Publish ood/<camera>/debug_image for rviz '
                              "(default: the params file's)."),
        DeclareLaunchArgument('log_level', default_value='info',
                              choices=['debug', 'info', 'warn', 'error', 'fatal'],
                              description='Logging level of the node.'),
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_monitor_node)])


def _monitor_node(context):
    """Build the node; launch arguments left empty keep the params file's values."""
    overrides = {'model_path': ParameterValue(LaunchConfiguration('model_path'), value_type=str),
                 'use_sim_time': LaunchConfiguration('use_sim_time')}
    for key in ('flow_model_path', 'image_topics', 'publish_debug_image'):
        if LaunchConfiguration(key).perform(context):
            overrides[key] = LaunchConfiguration(key)
    return [Node(
        package='vae_ood_monitor', executable='monitor_node', name='ood_monitor',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'), overrides],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )]
