"""Training curves as PNG, from a stage's ``log_history`` (the Trainer's logged records).

SFT: the loss (and token accuracy) per step. GRPO: the loss, the total reward and each reward
component's mean (TRL logs them as ``rewards/<function>/mean``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REWARD_PREFIX = "rewards/"
REWARD_SUFFIX = "/mean"


def series(log_history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged quantity, skipping the final summary record."""
    points = [
        (int(r["step"]), float(r[key]))
        for r in log_history
        if key in r and "step" in r and "train_runtime" not in r and _logged(r[key])
    ]
    return [p[0] for p in points], [p[1] for p in points]


def _logged(value: object) -> bool:
    """A logged number (TRL logs a reward that scored no row of its window as NaN, saved as
    None: e.g. a grounding reward in a step of classification rows only)."""
    return isinstance(value, int | float) and value == value


def reward_components(log_history: list[dict]) -> list[str]:
    """The logged reward component keys, in first-seen order."""
    keys: list[str] = []
    for record in log_history:
        for key in record:
            if key.startswith(REWARD_PREFIX) and key.endswith(REWARD_SUFFIX) and key not in keys:
                keys.append(key)
    return keys


def component_name(key: str) -> str:
    """``rewards/format_reward/mean`` -> ``format``."""
    name = key[len(REWARD_PREFIX) : -len(REWARD_SUFFIX)]
    return name.removesuffix("_reward")


def _plot(path: Path, title: str, curves: list[tuple[str, list[int], list[float]]]) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for label, steps, values in curves:
        ax.plot(steps, values, marker="." if len(steps) < 40 else None, label=label)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_stage(stage: str, log_history: list[dict], out_dir: str | Path) -> list[Path]:
    """Write ``<stage>_loss.png`` and, for GRPO, ``grpo_reward.png``; return the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    steps, loss = series(log_history, "loss")
    if steps:
        written.append(
            _plot(out_dir / f"{stage}_loss.png", f"{stage.upper()} loss", [("loss", steps, loss)])
        )
    components = reward_components(log_history)
    steps, total = series(log_history, "reward")
    if steps:
        curves = [("total (weighted)", steps, total)]
        curves += [(component_name(k), *series(log_history, k)) for k in components]
        written.append(
            _plot(out_dir / f"{stage}_reward.png", f"{stage.upper()} mean reward", curves)
        )
    return written


def reward_trend(log_history: list[dict], window: int = 5) -> dict:
    """Mean total reward of the first and the last ``window`` logged GRPO steps, and the
    same for each component: what the run summary prints."""
    steps, total = series(log_history, "reward")
    if not steps:
        return {}
    window = max(1, min(window, len(steps) // 2 or 1))

    def ends(values: list[float]) -> dict:
        first, last = values[:window], values[-window:]  # (a component may log fewer)
        return {"first": sum(first) / len(first), "last": sum(last) / len(last)}

    return {
        "logged_steps": [steps[0], steps[-1]],
        "window": window,
        "total": ends(total),
        "components": {
            component_name(k): ends(values)
            for k in reward_components(log_history)
            if (values := series(log_history, k)[1])
        },
    }
