"""How the driver starts a step's processes: plain ``python``, or ``accelerate launch``.

The launcher's flags are checked by accelerate's own launch parser
(``accelerate.commands.launch.launch_command_parser``), the parser ``accelerate launch`` itself
runs: a flag the installed accelerate does not take is refused when the run is planned, before
any step starts, not by the first step's process. accelerate has no public way to write a parsed
launch back into a command line, so the flags are written here and parsed there.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from argparse import Namespace
from pathlib import Path
from typing import NoReturn

from .run_arguments import RecipeError, RunArguments
from .run_files import folder_entries
from .run_state import RunState

logger = logging.getLogger("model_training.run")

ACCELERATE_LAUNCH = "accelerate.commands.launch"  # `accelerate launch`, run with this python
STOP_GRACE_S = 30  # an interrupted driver waits this long for its step to stop, then kills it


class StepFailed(RuntimeError):
    """A step's process exited with an error; its own output says why."""

    def __init__(self, step: str, returncode: int):
        super().__init__(
            f"{step} failed (exit status {returncode}); its output above says why. Fix the "
            "cause, then re-run the same command with --resume"
        )
        self.returncode = returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch_args(flags: list[str]) -> Namespace:
    """``flags`` as ``accelerate launch`` parses them (its own parser); a RecipeError names a
    flag it refuses."""
    from accelerate.commands.launch import launch_command_parser

    parser = launch_command_parser()

    def refuse(message: str) -> NoReturn:
        raise RecipeError(f"accelerate launch {' '.join(flags)}: {message}")

    parser.error = refuse  # type: ignore[method-assign]  # one line, not accelerate's usage
    return parser.parse_args([*flags, "-m", "model_training"])


def launcher(run: RunArguments) -> list[str]:
    """The command prefix before ``-m MODULE``: plain python, or ``accelerate launch``."""
    if run.accelerate_config is None and (run.num_processes or 1) == 1:
        return [sys.executable]
    flags = []
    if run.accelerate_config:
        flags += ["--config_file", run.accelerate_config]
    else:
        # accelerate 1.15+: `--cpu --num_processes N` starts ONE process (its simple launcher);
        # `--multi_gpu` starts N with torchrun, and processes whose configs say use_cpu then
        # join over gloo (CPU) instead of NCCL.
        flags += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        flags += ["--multi_gpu"] if (run.num_processes or 1) > 1 else []
    if run.num_processes:
        flags += ["--num_processes", str(run.num_processes)]
    flags += ["--main_process_port", str(_free_port())]
    accelerate_launch_args(flags)
    return [sys.executable, "-m", ACCELERATE_LAUNCH, *flags]


def launch(state: RunState, step: str, command: list[str], folder: Path) -> None:
    """Run one step's command, recorded in the run's state; StepFailed when it fails.

    The step's processes hold the run's lock with the driver (its descriptor is passed on):
    a step left running by a killed driver still keeps a second driver out of the folder. A
    driver that is interrupted (Ctrl-C, SIGTERM) stops its step before it exits. However the
    step ends, its folder's entries are recorded as the run's own (``run_files``)."""
    logger.info("%s: %s", step, " ".join(command))
    lock = state.lock
    process = subprocess.Popen(command, pass_fds=(lock.fd,) if lock and lock.fd else ())
    try:
        if lock:
            lock.add_child(process.pid)
        state.record(step, command=command[1:], pid=process.pid, status="running")
        returncode = process.wait()
    except BaseException:
        _stop(process)
        raise
    finally:
        state.record(step, files=folder_entries(folder) if folder.is_dir() else [])
    if returncode:
        raise StepFailed(step, returncode)


def _stop(process: subprocess.Popen) -> None:
    """Stop an interrupted driver's step: SIGTERM, then SIGKILL after STOP_GRACE_S."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


__all__ = ["ACCELERATE_LAUNCH", "StepFailed", "accelerate_launch_args", "launch", "launcher"]
