from setuptools import find_packages, setup

package_name = "vla_tools"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        ("bin", ["bin/vla"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="VLA workspace maintainers",
    maintainer_email="maintainers@vla-workspace.dev",
    description="The vla command and its verbs, the demo loop and reports, the benchmarks and the fuzz harness.",
    license="Apache-2.0",
    entry_points={
        # `vla NAME ...`: register(subparsers) adds a parser and sets its func(args) -> exit code.
        "vla.commands": ["deploy = vla_tools.deploy_cli:register",
                         "eval = vla_tools.eval_cli:register",
                         "record = vla_tools.record_cli:register",
                         "train = vla_trainer.cli:register"],
        # `vla bench NAME`: function(args, say) -> dict of figures.
        "vla.bench": ["sim = vla_tools.bench:bench_sim",
                      "reliability = vla_tools.bench_reliability:bench_reliability",
                      "perception = vla_tools.bench_perception:bench_perception",
                      "policy = vla_tools.bench_policy:bench_policy",
                      "recorder = vla_recorder.bench:bench_recorder",
                      "safety = vla_safety.bench:bench_safety",
                      "train = vla_trainer.bench:bench_train",
                      "rl = vla_tools.bench_rl:bench_rl",
                      "arm = vla_tools.bench_arm:bench_arm",
                      "uncertainty = vla_tools.bench_uncertainty:main"],
    },
)
