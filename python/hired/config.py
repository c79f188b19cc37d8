"""hired.DropConfig: what a user chooses (mode, budget, full-image share, newline policy)."""

from __future__ import annotations

import dataclasses

from ._ops import ops


@dataclasses.dataclass(frozen=True)
class DropConfig:
    """HiRED's settings, validated on construction (by hired's C++: a bad value raises
    ValueError naming it).

    budget_rate: the share of each image's P * N visual tokens to keep, in (0, 1]; or
    budget_tokens: an absolute count per image (exact mode only). Give at most one of them;
        with neither, the rate is 0.2.
    alpha: the share of the budget that goes to the full image, in [0, 1].
    mode: "exact" (the default: the budget is met exactly, padding-aware, spatially correct;
        counts follow from the image size) or "reference" (bit-compatible with the published
        implementation).
    newline: where image_newline rows go: "every_row" (stock LLaVA-Next), "none", or
        "kept_rows" (only after rows that kept a token; counts depend on the scores).
    """

    budget_rate: float | None = None
    budget_tokens: int | None = None
    alpha: float = 0.5
    mode: str = "exact"
    newline: str = "every_row"

    def __post_init__(self) -> None:
        if self.budget_rate is None and self.budget_tokens is None:
            object.__setattr__(self, "budget_rate", 0.2)
        for name, kind in (("mode", str), ("newline", str)):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"{name}: expected a str, got {type(getattr(self, name)).__name__}")
        ops.check_config(**self.kwargs())

    def kwargs(self) -> dict:
        """The keyword arguments torch.ops.hired's ops take for this configuration."""
        return {
            "mode": self.mode,
            "budget_rate": None if self.budget_rate is None else float(self.budget_rate),
            "budget_tokens": None if self.budget_tokens is None else int(self.budget_tokens),
            "alpha": float(self.alpha),
            "newline": self.newline,
        }

    def for_single_partition(self) -> "DropConfig":
        """The configuration as LLaVA-1.5 applies it: one partition per image and no
        image_newline, so its rows are the kept tokens whatever the newline policy."""
        return dataclasses.replace(self, newline="none")

    @property
    def counts_follow_from_size(self) -> bool:
        """Whether each image's row count follows from its size alone (exact mode with newline
        policy none or every_row): what a processor that expands <image> placeholders needs."""
        return self.mode == "exact" and self.newline != "kept_rows"

    def require_counts_from_size(self, host: str) -> None:
        """Raises ValueError unless counts_follow_from_size: `host` (what fixes the placeholder
        counts, e.g. "the processor") needs each image's count before the vision tower runs."""
        if not self.counts_follow_from_size:
            raise ValueError(
                f"config: mode '{self.mode}' with newline '{self.newline}' makes each image's row count depend "
                f"on the scores, but {host} fixes it before the vision tower runs; use mode 'exact' with newline "
                "'every_row' or 'none'"
            )


def check_llava_features(model_config) -> None:
    """What HiRED needs of a LLaVA(-Next) model config (transformers' or vLLM's): one vision
    feature layer, and its patch tokens without CLS (strategy 'default'). ValueError otherwise."""
    if not isinstance(model_config.vision_feature_layer, int):
        raise ValueError(f"vision_feature_layer: {model_config.vision_feature_layer!r}; hired needs one layer (an int)")
    if model_config.vision_feature_select_strategy != "default":
        raise ValueError(
            f"vision_feature_select_strategy: '{model_config.vision_feature_select_strategy}'; hired selects "
            "patch tokens, which needs 'default' (CLS dropped)"
        )
