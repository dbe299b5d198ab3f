"""Ships the top-level `conf/` inside the wheel as `src/conf` (pyproject.toml holds everything else).

Hydra composes configs from a directory, so an installed copy needs the YAML files on disk next
to the code; mapping the package `src.conf` to `conf/` keeps one copy of them, at the top level
of the checkout where users edit them. `src.CONF_DIR` finds whichever of the two exists.
"""
from setuptools import find_namespace_packages, setup

CONF_PACKAGES = ["src.conf", *(f"src.conf.{name}" for name in find_namespace_packages(where="conf"))]

setup(
    packages=[*find_namespace_packages(include=["src*"]), *CONF_PACKAGES],
    package_dir={"src.conf": "conf"},
)
