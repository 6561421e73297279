"""scripts/gpu_check.sh, the runner of the GPU-only checks: what it can be asked without a GPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


def test_a_misspelt_step_is_refused_before_anything_is_installed_or_written(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(SCRIPT), str(out), "cuda-tests", "speeed"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "unknown step 'speeed'" in done.stderr and "cuda-tests speed quality-probe" in done.stderr
    assert not out.exists()


def test_the_output_folder_is_required():
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "usage: bash scripts/gpu_check.sh OUT_DIR" in done.stderr
