"""hired.transformers.apply: HiRED inside a Hugging Face transformers LLaVA-Next or LLaVA-1.5 model.

    model = LlavaNextForConditionalGeneration.from_pretrained(path)   # or LlavaForConditionalGeneration
    processor = LlavaNextProcessor.from_pretrained(path)               # or LlavaProcessor
    handle = hired.transformers.apply(model, processor, hired.DropConfig(budget_rate=0.2))
    inputs = processor(images=image, text=prompt, return_tensors="pt")  # <image> -> hired's count
    output = model.generate(**inputs, max_new_tokens=15)
    handle.last_selection                                               # what was kept
    handle.remove()                                                     # stock again, exactly

The vision tower keeps its own attention (SDPA or flash): forward hooks take the query and key
projections of ViT layer 0 and of the feature layer, from which hired scores the CLS row. The
projector sees only the kept tokens, and hired lays out the image_newline rows (LLaVA-1.5 has
none: its rows are the kept tokens, whatever the newline policy). Placeholder counts are fixed
by the processor before the vision tower runs, so only configurations whose counts follow from
the image size are accepted: exact mode with newline policy every_row or none (reference mode
and kept_rows are refused by apply).
"""

from __future__ import annotations

import torch

from .config import DropConfig, check_llava_features
from .selection import Selection, gather, num_image_tokens, pack_rows, select_qk


def _encoder_layers(vision_tower):
    transformer = getattr(vision_tower, "vision_model", vision_tower)
    encoder = getattr(transformer, "encoder", None)
    layers = getattr(encoder, "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") for layer in layers):
        raise TypeError(f"model: vision tower {type(vision_tower).__name__} has no CLIP encoder layers")
    return layers


class Handle:
    """What apply() changed, and the most recent selection (a hired.Selection)."""

    def __init__(self, model, processor, config: DropConfig):
        self.model, self.processor, self.config = model, processor, config
        self.last_selection: Selection | None = None
        self._hooks: list = []
        self._captured: dict[str, torch.Tensor] = {}

    def remove(self) -> None:
        """Restores stock transformers behaviour exactly (the model's and the processor's)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        inner = self.model.model
        if "get_image_features" in vars(inner):
            del inner.get_image_features
        for name in ("_get_number_of_features", "replace_image_token"):
            if self.processor is not None and name in vars(self.processor):
                delattr(self.processor, name)
        inner._hired_handle = None


def _is_llava_next(model) -> bool:
    """LlavaNextForConditionalGeneration (anyres) or LlavaForConditionalGeneration (LLaVA-1.5);
    TypeError naming the model for anything else."""
    from transformers import LlavaForConditionalGeneration, LlavaNextForConditionalGeneration

    if isinstance(model, LlavaNextForConditionalGeneration):
        return True
    if type(model) is LlavaForConditionalGeneration:  # not its subclasses (other vision towers)
        return False
    raise TypeError(
        f"model: {type(model).__name__} is not supported; hired.transformers.apply takes a "
        "LlavaNextForConditionalGeneration or a LlavaForConditionalGeneration"
    )


def _check_model(model, config: DropConfig) -> bool:
    """Refuses what apply cannot do, by name; whether the model is LLaVA-Next (else LLaVA-1.5)."""
    is_llava_next = _is_llava_next(model)
    if getattr(model.model, "_hired_handle", None) is not None:
        raise ValueError("model: HiRED is applied already; call .remove() on its handle first")
    if not isinstance(config, DropConfig):
        raise TypeError(f"config: expected hired.DropConfig, got {type(config).__name__}")
    config.require_counts_from_size("the processor")
    check_llava_features(model.config)
    return is_llava_next


def apply(model, processor=None, config: DropConfig | None = None) -> Handle:
    """HiRED on a loaded LlavaNextForConditionalGeneration or LlavaForConditionalGeneration, in
    place; returns the handle that removes it. With a processor (LlavaNextProcessor or
    LlavaProcessor), `processor(images=..., text=...)` then expands each <image> to hired's row
    count for that image."""
    config = DropConfig() if config is None else config
    is_llava_next = _check_model(model, config)
    mc = model.config
    vision = mc.vision_config
    layers = _encoder_layers(model.model.vision_tower)
    feature = mc.vision_feature_layer
    feature_index = feature if feature >= 0 else len(layers) + 1 + feature  # hidden_states index
    if not 1 <= feature_index <= len(layers):
        raise ValueError(f"vision_feature_layer: {feature} selects no encoder layer of {len(layers)}")
    if is_llava_next:
        pinpoints = [list(p) for p in mc.image_grid_pinpoints]
    else:  # LLaVA-1.5: one partition per image and no image_newline, so no newline rows
        pinpoints, config = [], config.for_single_partition()
    tile_px, patch_px = vision.image_size, vision.patch_size
    handle = Handle(model, processor, config)

    # q/k of layer 0 and of the layer whose output is hidden_states[feature_index].
    def capture(name):
        def hook(_module, _inputs, output):
            handle._captured[name] = output
        return hook

    for name, layer in (("init", layers[0]), ("final", layers[feature_index - 1])):
        handle._hooks.append(layer.self_attn.q_proj.register_forward_hook(capture(name + ".q")))
        handle._hooks.append(layer.self_attn.k_proj.register_forward_hook(capture(name + ".k")))

    inner = model.model
    if processor is not None:
        _patch_processor(processor, config, pinpoints, patch_px, tile_px)
    inner.get_image_features = _image_features(inner, handle, pinpoints, tile_px, vision.num_attention_heads)
    inner._hired_handle = handle
    return handle


def _patch_processor(processor, config, pinpoints, patch_px, tile_px):
    from transformers import LlavaNextProcessor, LlavaProcessor

    if not isinstance(processor, (LlavaNextProcessor, LlavaProcessor)):
        raise TypeError(f"processor: {type(processor).__name__} is not a LlavaNextProcessor or LlavaProcessor")
    if isinstance(processor, LlavaNextProcessor) != bool(pinpoints):
        raise TypeError(f"processor: {type(processor).__name__} does not belong to this model's architecture")
    if processor.vision_feature_select_strategy != "default" or processor.num_additional_image_tokens != 1:
        raise ValueError(
            "processor: vision_feature_select_strategy must be 'default' with one additional (CLS) "
            f"token, as the model's; got '{processor.vision_feature_select_strategy}' and "
            f"{processor.num_additional_image_tokens}"
        )

    def rows(height, width):
        return num_image_tokens((int(height), int(width)), config, pinpoints, patch_px, tile_px)

    if isinstance(processor, LlavaProcessor):  # one centre-cropped partition: the count is the size's
        def replace_image_token(image_inputs, image_idx, **_kwargs):
            height, width = image_inputs["pixel_values"][image_idx].shape[-2:]
            if (height, width) != (tile_px, tile_px):
                raise ValueError(f"processor: images of {height}x{width} px, but the model's are {tile_px} px")
            return processor.image_token * rows(height, width)

        processor.replace_image_token = replace_image_token
        return
    theirs = [list(p) for p in processor.image_processor.image_grid_pinpoints]
    if theirs != pinpoints:
        raise ValueError(f"processor: grid pinpoints {theirs} differ from the model's {pinpoints}")

    def number_of_features(orig_height, orig_width, height, width):
        if (height, width) != (tile_px, tile_px):
            raise ValueError(f"processor: tiles of {height}x{width} px, but the model's are {tile_px} px")
        # The processor subtracts the CLS token it counts in for strategy 'default'.
        return rows(orig_height, orig_width) + processor.num_additional_image_tokens

    processor._get_number_of_features = number_of_features


def _image_features(inner, handle, pinpoints, tile_px, heads):
    mc = inner.config

    def partitions_of(image_sizes, count):
        if not pinpoints:  # LLaVA-1.5: one partition per image
            return [1] * count
        from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

        return [
            image_size_to_num_patches(image_size=size, grid_pinpoints=mc.image_grid_pinpoints, patch_size=tile_px)
            for size in image_sizes
        ]

    def get_image_features(pixel_values, image_sizes=None, vision_feature_layer=None,
                           vision_feature_select_strategy=None, **kwargs):
        layer = mc.vision_feature_layer if vision_feature_layer is None else vision_feature_layer
        strategy = vision_feature_select_strategy or mc.vision_feature_select_strategy
        if layer != mc.vision_feature_layer or strategy != "default":
            raise ValueError(
                f"vision_feature_layer / vision_feature_select_strategy: {layer!r} / {strategy!r} differ "
                "from what HiRED was applied with"
            )
        if not pinpoints and image_sizes is not None:
            raise ValueError("image_sizes: LLaVA-1.5 takes one centre-cropped partition per image, not sizes")
        if pinpoints and image_sizes is None:
            raise ValueError("image_sizes: LLaVA-Next needs each image's (height, width)")
        partitions = partitions_of(image_sizes, pixel_values.shape[0])
        if pixel_values.dim() == 5:
            pixel_values = torch.cat([pv[:n] for pv, n in zip(pixel_values, partitions)], dim=0)
        elif pixel_values.dim() != 4:
            raise ValueError(f"pixel_values: shape {list(pixel_values.shape)}; expected 4 or 5 dimensions")
        kwargs.pop("output_hidden_states", None)
        kwargs.pop("return_dict", None)
        handle._captured.clear()
        outputs = inner.vision_tower(pixel_values, output_hidden_states=True, return_dict=True, **kwargs)
        features = outputs.hidden_states[layer][:, 1:]  # strategy 'default': CLS dropped
        c = handle._captured
        selection = select_qk(
            c["init.q"], c["init.k"], c["final.q"], c["final.k"], heads, partitions, image_sizes,
            config=handle.config, grid_pinpoints=pinpoints, tile_px=tile_px,
        )
        handle._captured.clear()
        handle.last_selection = selection
        # Only the kept tokens reach the projector; hired then lays out the newline rows.
        kept = gather(selection, features, config=DropConfig(budget_rate=1.0, newline="none"))
        projected = inner.multi_modal_projector(kept.features)
        rows = pack_rows(selection, projected, getattr(inner, "image_newline", None))
        outputs.pooler_output = list(torch.split(rows.features, rows.lengths.tolist()))
        return outputs

    return get_image_features
