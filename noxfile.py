"""Every task of the xtalnet monorepo: ``nox`` runs the default (CI) sessions.

The package table below drives the sessions. Each package lives in
``packages/<dist>/`` with a hatchling ``pyproject.toml`` that declares the extras
``test`` (what its tests need) and, where it has benchmarks, ``bench``.

Torch is always installed first and pinned through a constraints file: on the
development and CI machines pip finds ``torch==2.13.0`` (CPU) locally, while any
looser requirement would download several GB of CUDA wheels.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
TORCH_VERSION = os.environ.get("TORCH_VERSION", "2.13.0")

nox.options.default_venv_backend = "venv"
nox.options.error_on_external_run = True

# dist name -> (import name, local packages it depends on, in install order)
PACKAGE_TABLE: dict[str, tuple[str, list[str]]] = {
    "rsh": ("rsh", []),
    "gaunt-elastic": ("gaunt_elastic", ["rsh"]),
    "periodic-conv": ("periodic_conv", ["rsh", "gaunt-elastic"]),
    "mp-audit": ("mp_audit", ["rsh", "gaunt-elastic", "periodic-conv"]),
    "xtalnet": ("xtalnet", ["rsh", "gaunt-elastic", "periodic-conv", "mp-audit"]),
}
# Only packages that exist yet take part.
PACKAGES = [
    name for name in PACKAGE_TABLE if (ROOT / "packages" / name / "pyproject.toml").is_file()
]


def _package_dir(name: str) -> Path:
    return ROOT / "packages" / name


def _install_torch(session: nox.Session) -> Path:
    """Install the pinned torch and return a constraints file that keeps it pinned."""
    constraints = Path(session.create_tmp()).resolve() / "constraints.txt"
    constraints.write_text(f"torch=={TORCH_VERSION}\n")
    session.install(f"torch=={TORCH_VERSION}")
    return constraints


def _install_editable(session: nox.Session, name: str, extras: str = "test") -> None:
    """Install ``name`` and its local dependencies in editable mode."""
    constraints = _install_torch(session)
    for dep in PACKAGE_TABLE[name][1]:
        session.install("-c", str(constraints), "-e", str(_package_dir(dep)))
    session.install("-c", str(constraints), "-e", f"{_package_dir(name)}[{extras}]")


def _pytest(session: nox.Session, *args: str) -> None:
    """Run pytest; the ``ci`` hypothesis profile is chosen through HYPOTHESIS_PROFILE."""
    env = {"HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "dev")}
    session.run("python", "-m", "pytest", *args, *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests against its editable install."""
    _install_editable(session, package)
    _pytest(session, "-c", str(ROOT / "pyproject.toml"), str(_package_dir(package) / "tests"))


@nox.session
@nox.parametrize("package", PACKAGES)
def isolated(session: nox.Session, package: str) -> None:
    """Build the wheels with hatch, install them alone in a fresh venv, run the tests.

    The tests are copied away from the source tree so that they import the installed
    wheel, which proves the wheel ships everything it needs (csrc, generated code,
    py.typed) and that its declared dependencies are enough.
    """
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("hatch")
    wheels = []
    for name in [*PACKAGE_TABLE[package][1], package]:
        with session.chdir(_package_dir(name)):
            session.run("hatch", "build", "--target", "wheel", str(dist / name), silent=True)
        (wheel,) = glob.glob(str(dist / name / "*.whl"))
        wheels.append(wheel)
    session.run("python", "-m", "pip", "uninstall", "--yes", "--quiet", "hatch", silent=True)

    constraints = _install_torch(session)
    session.install("-c", str(constraints), *wheels[:-1], f"{wheels[-1]}[test]")

    tests_copy = tmp / "tests"
    shutil.rmtree(tests_copy, ignore_errors=True)
    shutil.copytree(_package_dir(package) / "tests", tests_copy)
    with session.chdir(tmp):
        _pytest(session, "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp), "tests")


@nox.session
def mypy(session: nox.Session) -> None:
    """mypy over every package's sources (configuration in the root pyproject.toml)."""
    constraints = _install_torch(session)
    for name in PACKAGES:
        session.install("-c", str(constraints), "-e", str(_package_dir(name)))
    session.install("mypy")
    sources = [str(_package_dir(name) / "src") for name in PACKAGES]
    session.run("mypy", *sources)


@nox.session
def readme(session: nox.Session) -> None:
    """Run every ```python block of every README (tests/test_readme_examples.py)."""
    constraints = _install_torch(session)
    for name in PACKAGES:
        session.install("-c", str(constraints), "-e", f"{_package_dir(name)}[test]")
    _pytest(session, "-c", str(ROOT / "pyproject.toml"), str(ROOT / "tests"))


@nox.session
def generate_check(session: nox.Session) -> None:
    """Regenerate rsh's generated code and fail on any difference with the committed files."""
    if "rsh" not in PACKAGES:
        session.skip("rsh does not exist yet")
    session.install("-r", str(_package_dir("rsh") / "codegen" / "requirements.txt"))
    session.run("python", str(_package_dir("rsh") / "codegen" / "generate.py"), "--check")


CUDA_SHIM = """#pragma once
// Shim for compile checks only: CPU builds of torch ship c10/cuda headers without this
// cmake-generated file. A CUDA build of torch has the real one.
#define C10_CUDA_BUILD_SHARED_LIBS
"""


@nox.session
def cuda_compile(session: nox.Session) -> None:
    """Compile every ``.cu`` file with nvcc against the torch headers (no GPU needed)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        session.skip("!!! nvcc NOT FOUND: CUDA sources were NOT compile-checked !!!")
    sources = sorted(glob.glob(str(ROOT / "packages/*/src/*/csrc/**/*.cu"), recursive=True))
    if not sources:
        session.skip("no .cu sources yet")
    _install_torch(session)
    session.install("numpy")  # torch warns on import without it, and the warning pollutes stdout
    includes = session.run(
        "python",
        "-W",
        "ignore",
        "-c",
        "import torch.utils.cpp_extension as c, sysconfig;"
        "print('\\n'.join([*c.include_paths(), sysconfig.get_paths()['include']]))",
        silent=True,
    )
    abi = session.run(
        "python",
        "-W",
        "ignore",
        "-c",
        "import torch; print(int(torch.compiled_with_cxx11_abi()))",
        silent=True,
    )
    tmp = Path(session.create_tmp()).resolve()
    shim = tmp / "shim" / "c10" / "cuda" / "impl"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "cuda_cmake_macros.h").write_text(CUDA_SHIM)
    flags = [f"-I{p}" for p in str(includes).split()] + [f"-I{tmp / 'shim'}"]
    for source in sources:
        csrc = Path(source).parent
        session.log(f"nvcc {Path(source).relative_to(ROOT)}")
        session.run(
            nvcc,
            "-std=c++20",
            "-c",
            source,
            "-o",
            str(tmp / (Path(source).stem + ".o")),
            f"-I{csrc}",
            *flags,
            f"-D_GLIBCXX_USE_CXX11_ABI={str(abi).strip()}",
            "-DTORCH_EXTENSION_NAME=compile_check",
            "--expt-relaxed-constexpr",
            "-Xcompiler",
            "-fPIC",
            "-w",
            external=True,
        )


def _bench_target(session: nox.Session) -> tuple[str, list[str]]:
    if not session.posargs or session.posargs[0] not in PACKAGES:
        session.error(f"usage: nox -s bench -- <package> [args]; package is one of {PACKAGES}")
    return session.posargs[0], list(session.posargs[1:])


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """``nox -s bench -- <package> [args]``: run ``packages/<package>/benchmarks/run.py``."""
    package, args = _bench_target(session)
    _install_editable(session, package, extras="bench")
    session.run("python", str(_package_dir(package) / "benchmarks" / "run.py"), *args)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main job: ``xtalnet demo`` (train on ASE's dcdft crystals, compare to the mean)."""
    _install_editable(session, "xtalnet", extras="demo")
    session.run("xtalnet", "demo", *session.posargs)


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """CUDA tests of every package; fails at once when no CUDA device is visible."""
    _install_torch(session)
    session.run(
        "python",
        "-c",
        "import torch, sys; ok = torch.cuda.is_available();"
        "print('CUDA available:', ok);"
        "sys.exit(0 if ok else 'no CUDA device: gpu session refused')",
    )
    for package in PACKAGES:
        _install_editable(session, package)
    _pytest(
        session,
        "-c",
        str(ROOT / "pyproject.toml"),
        "-m",
        "cuda",
        *[str(_package_dir(p) / "tests") for p in PACKAGES],
    )


if __name__ == "__main__":  # pragma: no cover - convenience for `python noxfile.py`
    sys.exit("run this file with nox")
