from setuptools import find_packages, setup

package_name = "vla_policy"

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
    description="Policy serving: verified artifacts, TensorRT/onnxruntime engines, chunking, hot-swap.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["policy = vla_policy.policy_node:main", "reward = vla_policy.reward_node:main"],
        "vla.nodes": ["policy = vla_policy.policy_node:PolicyNode", "reward = vla_policy.reward_node:RewardNode"],
        "vla.params": ["policy = vla_policy.policy_params:POLICY_PARAMS",
                       "reward = vla_policy.reward_params:REWARD_PARAMS"],
    },
)
