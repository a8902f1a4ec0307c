"""benchmarks/gpu_smoke.sh fits its machine (issue 18, item 6): its plan (the planned limits
within the deadline, vLLM first of the optional steps), its disk check and its refusals, and, on
the CPU with the tiny model, its chain: one checkpoint per stage, nothing left behind, also
when it is stopped."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.sh"
REQUIRED = ["env", "model", "data", "chain", "resume"]
OPTIONAL = ["vllm", "grpo_step", "eval"]
PLAN_LINE = re.compile(r"^ {4}(\w+) +(\d+)s +(required|optional) +(planned|if time is left)")
SUMMARY_LINE = re.compile(r"^(\w+) +(ok|skipped|rc=\d+) +(\S+) +([\d.]+) MB +(.*)$")
CPU_RUN = {
    "SMOKE_DEVICE": "cpu",
    "SMOKE_SHAPE": "tiny",
    "SMOKE_CASES": "6",
    "SMOKE_SIZE": "64",
    "SMOKE_SLICES": "16",
    "SMOKE_EVAL_LIMIT": "4",
    "SMOKE_NEW_TOKENS": "12",
    "SMOKE_SFT_STEPS": "2",
    "SMOKE_GRPO_STEPS": "2",
}

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash, timeout"
)


def smoke(tmpdir: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """Run the script with TMPDIR=tmpdir (where its temporary work folder goes)."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SMOKE_")}
    environment |= {"TMPDIR": str(tmpdir), "PYTHON": sys.executable, **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def plan(stdout: str) -> tuple[int, list[tuple[str, int, str, bool]], int, int]:
    """(deadline, [(step, limit, kind, planned)], free MB, peak estimate MB) from the output."""
    deadline = int(re.search(r"deadline (\d+)s", stdout).group(1))
    steps = [
        (m.group(1), int(m.group(2)), m.group(3), m.group(4) == "planned")
        for m in map(PLAN_LINE.match, stdout.splitlines())
        if m
    ]
    disk = re.search(r"=== disk: free (\d+) MB in .*; peak estimate (\d+) MB", stdout)
    return deadline, steps, int(disk.group(1)), int(disk.group(2))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("seconds", [None, "580", "450"])
def test_planned_limits_fit_the_deadline_and_vllm_comes_first(tmp_path, seconds):
    env = {"SMOKE_SECONDS": seconds} if seconds else {}
    result = smoke(tmp_path / "tmp", "--plan", **env)
    assert result.returncode == 0, result.stderr
    deadline, steps, free_mb, peak_mb = plan(result.stdout)
    assert deadline == int(seconds or 580) and deadline < 600  # one 10-minute command
    names = [name for name, *_ in steps]
    assert names == REQUIRED + OPTIONAL  # vllm first of the optional steps
    assert [kind for _, _, kind, _ in steps] == ["required"] * 5 + ["optional"] * 3
    planned = [limit for _, limit, _, is_planned in steps if is_planned]
    assert sum(planned) <= deadline
    assert f"planned limits: {sum(planned)}s of the {deadline}s deadline" in result.stdout
    assert all(is_planned for _, _, kind, is_planned in steps if kind == "required")
    # going down the list, a step is planned when its limit fits next to the planned steps
    # before it (less the script's overhead)
    overhead = int(re.search(r"\((\d+)s kept for overhead\)", result.stdout).group(1))
    total = 0
    for _, limit, _, is_planned in steps:
        assert is_planned == (total + limit <= deadline - overhead)
        total += limit if is_planned else 0
    assert all(limit > 0 for _, limit, *_ in steps)
    assert free_mb > 0
    # the 7B-width smoke model's checkpoints or grpo_step's 16.6 GB model dominate the estimate
    assert 17_000 < peak_mb < 64 * 1024
    assert leftovers(tmp_path / "tmp") == []  # --plan creates nothing


def test_vllm_step_is_planned_with_the_default_deadline(tmp_path):
    result = smoke(tmp_path / "tmp", SMOKE_PLAN_ONLY="1")
    assert result.returncode == 0
    steps = {name: is_planned for name, _, _, is_planned in plan(result.stdout)[1]}
    assert steps["vllm"] and steps["eval"] and not steps["grpo_step"]


def test_refuses_to_start_without_enough_disk(tmp_path):
    before = set(Path("/tmp").glob("gpu-smoke.*"))
    result = smoke(tmp_path / "tmp", SMOKE_PEAK_MB=str(10**9))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MB free" in lines[0] and "1000000000 MB" in lines[0]
    assert "peak estimate 1000000000 MB" in result.stdout
    assert leftovers(tmp_path / "tmp") == []
    assert set(Path("/tmp").glob("gpu-smoke.*")) == before


def test_refuses_a_workdir_that_holds_files(tmp_path):
    workdir = tmp_path / "mine"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("keep me")
    result = smoke(tmp_path / "tmp", str(workdir))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "already holds files" in lines[0]
    assert leftovers(workdir) == ["notes.txt"]


def test_a_named_workdir_is_kept_and_its_scratch_removed(tmp_path):
    """A deadline too short for any step: nothing runs, the named folder stays (less tmp/)."""
    workdir = tmp_path / "new" / "work"
    result = smoke(tmp_path / "tmp", str(workdir), SMOKE_SECONDS="8")
    assert result.returncode == 1
    assert re.search(r"^env +skipped .*not in the budget", result.stdout, re.M)
    assert f"kept the work folder {workdir}" in result.stdout
    assert workdir.is_dir() and leftovers(workdir) == []


def test_cpu_chain_keeps_one_checkpoint_per_stage_and_leaves_nothing(tmp_path):
    tmpdir = tmp_path / "tmp"
    before = set(Path("/tmp").glob("gpu-smoke.*"))
    result = smoke(tmpdir, timeout=600, **CPU_RUN)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    deadline, steps, _, peak_mb = plan(out)
    summary = out[out.index("=== gpu_smoke summary") :]
    rows = {m.group(1): m for m in map(SUMMARY_LINE.match, summary.splitlines()) if m}
    assert list(rows) == REQUIRED + OPTIONAL
    for name in [*REQUIRED, "eval"]:
        assert rows[name].group(2) == "ok", rows[name].group(0)
    for name in ("vllm", "grpo_step"):
        assert rows[name].group(2) == "skipped" and "CPU mode" in rows[name].group(5)

    # save_total_limit 1: one checkpoint folder per stage at the end of the chain and of the
    # resume (GRPO continued from checkpoint-2 to step 3); the script lists the folders there
    assert rows["chain"].group(5) == "checkpoints: sft 1 (checkpoint-2), grpo 1 (checkpoint-2)"
    assert rows["resume"].group(5) == "checkpoints: sft 1 (checkpoint-2), grpo 1 (checkpoint-3)"
    assert "=== checkpoints removed" in out
    used = {name: float(row.group(4)) for name, row in rows.items()}
    assert 0 < used["chain"] <= peak_mb and max(used.values()) <= peak_mb
    assert used["eval"] < used["resume"]  # the checkpoints went after the resume step

    # the temporary work folder and everything under it are gone
    work = Path(re.search(r"^=== work folder (\S+)$", out, re.M).group(1))
    assert work.parent == tmpdir and work.name.startswith("gpu-smoke.")
    assert f"=== removed the work folder {work}" in out
    assert not work.exists() and leftovers(tmpdir) == []
    assert set(Path("/tmp").glob("gpu-smoke.*")) <= before


def test_a_stopped_run_stops_its_step_and_removes_its_work_folder(tmp_path):
    """SIGTERM (or Ctrl-C) while the chain runs: the script stops the step's processes at once
    and its EXIT trap removes the work folder."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SMOKE_")}
    environment |= {"TMPDIR": str(tmpdir), "PYTHON": sys.executable, **CPU_RUN}
    process = subprocess.Popen(
        ["bash", str(SCRIPT)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("=== chain (limit"):
                break
        time.sleep(3)  # the driver has started its SFT process
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
        seconds = time.monotonic() - stopped
    finally:
        if process.poll() is None:
            process.kill()
    out = "".join(lines) + rest
    assert process.returncode == 143, out[-3000:]
    assert seconds < 30 and "=== stopped by a signal" in out
    work = re.search(r"^=== work folder (\S+)$", out, re.M).group(1)
    assert f"=== removed the work folder {work}" in out
    assert leftovers(tmpdir) == []
    time.sleep(1)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert work not in ps  # no step process (driver, SFT) outlived the script
