from setuptools import find_packages, setup

package_name = "vla_language"

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
    description="Instruction text to a latched sentence embedding (MiniLM through sentence-transformers or ONNX).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["language = vla_language.language_node:main"],
        "vla.nodes": ["language = vla_language.language_node:LanguageNode"],
        "vla.params": ["language = vla_language.language_params:LANGUAGE_PARAMS"],
    },
)
