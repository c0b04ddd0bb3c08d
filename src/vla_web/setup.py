from setuptools import find_packages, setup

package_name = "vla_web"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={package_name: ["static/*.html"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="VLA workspace maintainers",
    maintainer_email="maintainers@vla-workspace.dev",
    description="Watch and steer the robot from a browser: a Rerun live view and a token-protected operator page.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["web_view = vla_web.web_node:main"],
        "vla.nodes": ["web_view = vla_web.web_node:WebViewNode"],
        "vla.params": ["web_view = vla_web.web_params:WEB_VIEW_PARAMS"],
        # `vla bench web`: function(args, say) -> dict of figures.
        "vla.bench": ["web = vla_web.bench:bench_web"],
    },
)
