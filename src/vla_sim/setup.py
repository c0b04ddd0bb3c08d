from setuptools import find_packages, setup

package_name = "vla_sim"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    # The arm's MJCF, loaded relative to vla_sim/envs/arm_kinematics.py.
    package_data={"vla_sim.envs": ["assets/arm/*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="VLA workspace maintainers",
    maintainer_email="maintainers@vla-workspace.dev",
    description="Simulated robots: embedded tabletop task, scripted expert, gymnasium adapters, sim-robot node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["sim_robot = vla_sim.sim_node:main", "sim_expert = vla_sim.sim_expert_node:main"],
        "vla.nodes": ["sim_robot = vla_sim.sim_node:SimRobotNode", "sim_expert = vla_sim.sim_expert_node:SimExpertNode"],
        "vla.params": ["sim_robot = vla_sim.sim_params:SIM_ROBOT_PARAMS",
                       "sim_expert = vla_sim.sim_expert_params:SIM_EXPERT_PARAMS"],
    },
)
