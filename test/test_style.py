"""ruff keeps the code to the project's style (ruff.toml); CI runs it through this test."""
import subprocess
import sys

from conftest import REPO


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "igneous_like", "test", "bench"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_imports_light():
    """`import igneous_like` must not pull in CloudVolume: workers and the CLI import it first."""
    code = "import sys, igneous_like; sys.exit('cloudvolume' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
