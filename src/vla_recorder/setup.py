from setuptools import find_packages, setup

package_name = "vla_recorder"

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
    description="Training-recorder: robot-contract topics recorded into LeRobotDataset v3.0 episodes.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["recorder = vla_recorder.recorder_node:main",
                            "bench_publisher = vla_recorder.bench_publisher:main"],
        "vla.nodes": ["recorder = vla_recorder.recorder_node:RecorderNode"],
        "vla.params": ["recorder = vla_recorder.recorder_params:RECORDER_PARAMS"],
    },
)
