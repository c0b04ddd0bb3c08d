from setuptools import find_packages, setup

package_name = "vla_teleop"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="VLA workspace maintainers",
    maintainer_email="maintainers@vla-workspace.dev",
    description="Teleoperation: scripted expert, keyboard and joystick devices, intervention flag.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["teleop = vla_teleop.teleop_node:main"],
        "vla.nodes": ["teleop = vla_teleop.teleop_node:TeleopNode"],
        "vla.params": ["teleop = vla_teleop.teleop_params:TELEOP_PARAMS"],
    },
)
