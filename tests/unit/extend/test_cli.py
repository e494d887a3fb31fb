"""The extend, check and recommend commands as users run them: real processes, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

SKLEARN = "sklearn-1.9.1-debian12-py311-cpu-inference"


def prebake(*args: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "prebake", *args], capture_output=True, text=True, timeout=120
    )
    return result.returncode, result.stdout, result.stderr, time.monotonic() - started


def test_extend_conflict_fails_at_once(tmp_path: Path) -> None:
    """extend with a requirement that changes a pinned package exits 2 within seconds, naming both versions."""
    (tmp_path / "r.txt").write_text("numpy<2\n")
    code, _, err, seconds = prebake("extend", SKLEARN, "-r", str(tmp_path / "r.txt"), "-t", "my/image:1")
    assert code == 2 and seconds < 10
    assert "numpy<2" in err and "numpy==" in err


def test_extend_bad_inputs(tmp_path: Path) -> None:
    """An unknown image exits 4 with close names; a bad apt name, a missing file or nothing to add exit 2."""
    code, _, err, _ = prebake("extend", "sklearn-1.9-debian12", "--apt", "curl", "-t", "my/image:1")
    assert code == 4 and SKLEARN in err
    code, _, err, _ = prebake("extend", SKLEARN, "--apt", "Bad_Name!", "-t", "my/image:1")
    assert code == 2 and "not a Debian package name" in err
    code, _, err, _ = prebake("extend", SKLEARN, "-r", str(tmp_path / "missing.txt"), "-t", "my/image:1")
    assert code == 2 and "does not exist" in err
    code, _, err, _ = prebake("extend", SKLEARN, "-t", "my/image:1")
    assert code == 2 and "nothing to add" in err
    (tmp_path / "r.txt").write_text("rich\n")
    code, _, err, _ = prebake("extend", SKLEARN, "-r", str(tmp_path / "r.txt"), "-t", "Not A Tag")
    assert code == 2 and "not a valid image reference" in err


def test_check_json_and_exit_code(tmp_path: Path) -> None:
    """check --format json reports an import failure as an error and exits 7 for CI."""
    (tmp_path / "score.py").write_text(
        "import no_such_module_prebake\ndef init(): pass\ndef run(x): return x\n"
    )
    code, out, _, seconds = prebake(
        "check", "--entry-script", str(tmp_path / "score.py"), "--where", "local", "--format", "json"
    )
    report = json.loads(out)
    assert code == 7 and not report["ok"] and seconds < 30
    failed = [f for f in report["findings"] if f["severity"] == "error"]
    assert failed[0]["step"] == "import-and-init" and "no_such_module_prebake" in failed[0]["message"]


def test_recommend_json(tmp_path: Path) -> None:
    """recommend --format json names the image and the reasons for a score.py that imports xgboost and sklearn."""
    (tmp_path / "score.py").write_text("import xgboost\nfrom sklearn.pipeline import Pipeline\n")
    code, out, _, _ = prebake("recommend", str(tmp_path / "score.py"), "--format", "json")
    result = json.loads(out)
    assert code == 0 and result["image"].startswith("xgboost-") and len(result["reasons"]) == 2


def test_recommend_missing_file(tmp_path: Path) -> None:
    """recommend on a path that is not there exits 4 with a message."""
    code, _, err, _ = prebake("recommend", str(tmp_path / "nope.pkl"))
    assert code == 4 and "does not exist" in err
