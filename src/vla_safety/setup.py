from setuptools import find_packages, setup

package_name = "vla_safety"

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
    description="The safety shield: the only path from policies and operators to the actuators.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["safety_shield = vla_safety.shield_node:main"],
        "vla.nodes": ["safety_shield = vla_safety.shield_node:SafetyShieldNode"],
        "vla.params": ["safety_shield = vla_safety.shield_params:SHIELD_PARAMS"],
    },
)
