"""Installing this package never shadows a user's own `pipelines` package or `sources/` folder.

The wheel is built from the repository and installed on its own (no editable hook, which would put
the whole repository on the path), then imported from a directory holding a user's dlt project.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    return next(out.glob("highlevel_dlt-*.whl"))


def test_the_wheel_claims_no_generic_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"sources", "highlevel_sync"}
    assert "sources/__init__.py" not in names  # a namespace package: other `sources/` portions join it
    assert "sources/highlevel/__init__.py" in names
    assert "highlevel_sync/sandbox/__init__.py" in names and "highlevel_sync/sync.py" in names
    assert any(n.startswith("sources/highlevel/webhooks/") and n.endswith(".pem") for n in names)


def test_a_users_pipelines_package_and_sources_folder_import_beside_it(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    project = tmp_path / "my_dlt_project"  # what a user's own dlt project looks like
    (project / "pipelines").mkdir(parents=True)
    (project / "pipelines" / "__init__.py").write_text("MINE = 'pipelines'\n")
    (project / "sources" / "crm").mkdir(parents=True)
    (project / "sources" / "crm" / "__init__.py").write_text("MINE = 'sources.crm'\n")
    check = (
        "import pipelines, sources.crm, sources.highlevel, highlevel_sync.sync, highlevel_sync.sandbox\n"
        "print(pipelines.MINE, sources.crm.MINE)\n"
        "print(sources.highlevel.__file__)\n"
        "print(highlevel_sync.sync.__file__)\n"
    )
    # the base interpreter: the test venv's own .pth files (this repository's editable install) stay
    # out; its site-packages only lends the dependencies (dlt, httpx...) through PYTHONPATH
    deps = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{site}:{deps}", "PATH": "/usr/bin:/bin"}
    base = getattr(sys, "_base_executable", sys.executable)
    shown = subprocess.run([base, "-c", check], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    mine, source_file, sync_file = shown.stdout.splitlines()
    assert mine == "pipelines sources.crm"
    assert source_file.startswith(str(site)) and sync_file.startswith(str(site))

    cli = subprocess.run([base, "-m", "highlevel_sync.highlevel_pipeline", "--help"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "run" in cli.stdout
