from setuptools import find_packages, setup

package_name = "vla_trainer"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        ("bin", ["bin/vla-train"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="VLA workspace maintainers",
    maintainer_email="maintainers@vla-workspace.dev",
    description="Offline training: datasets to verified policy artifacts; the trainer node and vla-train.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["trainer = vla_trainer.trainer_node:main", "rl_learner = vla_trainer.rl_learner_node:main"],
        "vla.nodes": ["trainer = vla_trainer.trainer_node:TrainerNode",
                      "rl_learner = vla_trainer.rl_learner_node:RLLearnerNode"],
        "vla.params": ["trainer = vla_trainer.trainer_params:TRAINER_PARAMS",
                       "rl_learner = vla_trainer.rl_params:RL_LEARNER_PARAMS"],
    },
)
