"""hired.vllm: HiRED in vLLM, as an out-of-tree model plugin.

Installed with the package (`pip install --no-build-isolation .` in vLLM's environment), vLLM
finds it through the `vllm.general_plugins` entry point and calls register() in every process
(front end, engine core, workers). A model opts in through its HF config:

    vllm serve llava-hf/llava-v1.6-vicuna-7b-hf --hf-overrides \
      '{"architectures": ["HiredLlavaNextForConditionalGeneration"],
        "hired": {"budget_rate": 0.2, "alpha": 0.5}}'

or `LLM(model=..., hf_overrides={...})`; LLaVA-1.5 (llava-hf/llava-1.5-7b-hf) likewise with
"HiredLlavaForConditionalGeneration". Without the override vLLM is untouched. The settings
under "hired" are hired.DropConfig's (budget_rate, budget_tokens, alpha, mode, newline; none
given: its defaults), validated when the engine starts. Only settings whose counts follow from
the image size are accepted (exact mode, newline every_row or none): vLLM fixes each image's
placeholder count while preprocessing, before the vision tower runs.
"""

from __future__ import annotations

import dataclasses

from ..config import DropConfig

# Architecture name -> "module:class", imported by vLLM when a model asks for it.
ARCHITECTURES = {
    "HiredLlavaNextForConditionalGeneration": "hired.vllm.llava_next:HiredLlavaNextForConditionalGeneration",
    "HiredLlavaForConditionalGeneration": "hired.vllm.llava:HiredLlavaForConditionalGeneration",
}
SETTINGS = tuple(field.name for field in dataclasses.fields(DropConfig))


def register() -> None:
    """Registers hired's architectures with vLLM's model registry; a second call (vLLM loads
    plugins once per process, an application may call it too) changes nothing."""
    from vllm import ModelRegistry

    for architecture, target in ARCHITECTURES.items():
        if architecture not in ModelRegistry.get_supported_archs():
            ModelRegistry.register_model(architecture, target)


def drop_config(hf_config) -> DropConfig:
    """The HiRED settings of a model's HF config (its "hired" entry), validated: ValueError
    naming the setting for an unknown key, a bad value, or counts that depend on the scores."""
    settings = getattr(hf_config, "hired", None)
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise ValueError(f"hired: {settings!r}; expected an object with some of {', '.join(SETTINGS)}")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"hired.{unknown[0]}: unknown setting; hired takes {', '.join(SETTINGS)}")
    try:
        config = DropConfig(**settings)
        config.require_counts_from_size("vLLM's processor")
    except (TypeError, ValueError) as error:
        raise ValueError(f"hired: {error}") from error
    return config
