from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.strip() for line in (here / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="igneous_like",
    version="0.1.0",
    description="Chunked, queue-driven processing of Neuroglancer Precomputed volumes.",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["igneous_like", "igneous_like.*"]),
    python_requires=">=3.9",
    install_requires=requirements,
    extras_require={
        "test": (here / "requirements-test.txt").read_text().split(),
        "jxl": ["imagecodecs>=2024.1.1"],  # JPEG XL chunks (--encoding jxl)
    },
    entry_points={"console_scripts": ["igneous-like=igneous_like.cli:main"]},
)
