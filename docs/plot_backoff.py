"""Draw the picture on the retry page: docs/images/backoff.png.

The delays come from resilio's own backoff function (``resilio._backoff.delays``,
the one every ``Retry`` uses), not from a model of it: for each jitter mode, many
retry sequences with ``base_delay=0.1, multiplier=2, max_delay=10``, each from its
own seeded ``random.Random``, shown as faint dots, a band from the 5th to the 95th
percentile, and the median.

The image is committed, so building the docs never needs matplotlib. After a change
to the backoff, regenerate it by hand from the repository root::

    pip install -e '.[docs]'
    python docs/plot_backoff.py
"""

from __future__ import annotations

import io
import random
import statistics
from pathlib import Path

from resilio._backoff import Jitter, delays

IMAGES = Path(__file__).resolve().parent / "images"
BASE_DELAY = 0.1
MULTIPLIER = 2.0
MAX_DELAY = 10.0
RETRIES = 12  # delays after tries 1..12
SAMPLES = 300  # sequences per jitter mode
MODES: tuple[tuple[Jitter, str], ...] = (
    ("full", 'jitter="full" (the default)'),
    ("equal", 'jitter="equal"'),
    ("decorrelated", 'jitter="decorrelated"'),
    (None, "jitter=None"),
)


def samples(jitter: Jitter) -> list[list[float]]:
    """SAMPLES sequences of RETRIES delays, one seeded generator per sequence."""
    return [
        delays(
            RETRIES + 1,
            base_delay=BASE_DELAY,
            multiplier=MULTIPLIER,
            max_delay=MAX_DELAY,
            jitter=jitter,
            random=random.Random(seed).random,
        )
        for seed in range(SAMPLES)
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    IMAGES.mkdir(exist_ok=True)
    retries = list(range(1, RETRIES + 1))
    schedule = delays(
        RETRIES + 1,
        base_delay=BASE_DELAY,
        multiplier=MULTIPLIER,
        max_delay=MAX_DELAY,
        jitter=None,
        random=random.random,
    )
    fig, axes = plt.subplots(2, 2, figsize=(8.5, 6), sharex=True, sharey=True, layout="constrained")
    fig.suptitle(
        f"Delay before each retry: base_delay={BASE_DELAY:g}, multiplier={MULTIPLIER:g}, "
        f"max_delay={MAX_DELAY:g} ({SAMPLES} runs each)"
    )
    spread = random.Random(0)  # a little horizontal spread, so the dots don't stack
    for ax, (jitter, title) in zip(axes.flat, MODES, strict=True):
        runs = samples(jitter)
        columns = [[run[k] for run in runs] for k in range(RETRIES)]
        xs = [k + 1 + spread.uniform(-0.18, 0.18) for k in range(RETRIES) for _ in runs]
        ys = [value for column in columns for value in column]
        ax.scatter(xs, ys, s=3, color="tab:blue", alpha=0.12, linewidths=0)
        low = [percentile(column, 0.05) for column in columns]
        high = [percentile(column, 0.95) for column in columns]
        ax.fill_between(
            retries, low, high, color="tab:blue", alpha=0.15, label="5th to 95th percentile"
        )
        ax.plot(
            retries,
            [statistics.median(column) for column in columns],
            color="tab:blue",
            linewidth=2,
            marker="o",
            markersize=3,
            label="median",
        )
        ax.plot(retries, schedule, color="black", linestyle="--", linewidth=1, label="schedule")
        ax.set_title(title, fontsize=10)
        ax.set_yscale("log")
        ax.set_ylim(0.003, 40)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[1]:
        ax.set_xlabel("retry (after try k failed)")
        ax.set_xticks(retries)
    for ax in axes[:, 0]:
        ax.set_ylabel("delay (s, log scale)")
    axes[0, 0].legend(loc="lower right", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    # Thousands of translucent dots make a PNG of many colours; a palette of 64 looks
    # the same and keeps the committed file small.
    from PIL import Image

    image = Image.open(buffer).convert("RGB").quantize(colors=64)
    image.save(IMAGES / "backoff.png", optimize=True)


if __name__ == "__main__":
    main()
