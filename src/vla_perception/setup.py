from setuptools import find_packages, setup

package_name = "vla_perception"

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
    description="Camera images to model-ready observations, camera health and a debug overlay.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["perception = vla_perception.perception_node:main"],
        "vla.nodes": ["perception = vla_perception.perception_node:PerceptionNode"],
        "vla.params": ["perception = vla_perception.perception_params:PERCEPTION_PARAMS"],
    },
)
