from glob import glob

from setuptools import find_packages, setup

package_name = "vla_bringup"

# The workspace's launch files and parameters are installed with the package so that
# `ros2 launch vla_bringup vla.launch.py profile:=sim` works from any directory.
params = [(f"share/{package_name}/{d}", glob(f"../../{d}/*.*")) for d in
          ("params", "params/profiles", "params/robots", "params/rviz", "params/foxglove")]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("../../launch/*.launch.py")),
        *params,
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="VLA workspace maintainers",
    maintainer_email="maintainers@vla-workspace.dev",
    description="Bring-up: lifecycle manager, profiles, process supervision.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "lifecycle_manager = vla_bringup.manager_node:main",
        ],
        "vla.nodes": ["lifecycle_manager = vla_bringup.manager_node:LifecycleManager"],
        "vla.params": ["lifecycle_manager = vla_bringup.manager_params:MANAGER_PARAMS"],
    },
)
