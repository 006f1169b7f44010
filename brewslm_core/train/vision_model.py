"""A small vision-language model: ViT encoder -> projector -> a causal LM's input embeddings.

No pretrained vision weights install offline, so the ViT is built from a config and randomly
initialised; the projector and the ViT learn from the training rows alone (the language model
keeps its pretrained weights, tuned with LoRA or fully).

Images are resized to ``image_size`` squares and cut into ``patch_size`` patches (64 px / 8 px
= an 8 x 8 grid by default). Each ``merge`` x ``merge`` block of neighbouring patch vectors is
concatenated before the projector, so an image costs ``(grid / merge) ** 2`` language-model
positions (16 by default) while the ViT still sees fine patches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

VISION_DEFAULTS: dict[str, Any] = {
    "image_size": 64,
    "patch_size": 8,
    "num_channels": 3,
    "hidden_size": 192,
    "num_hidden_layers": 4,
    "num_attention_heads": 3,
    "intermediate_size": 768,
}
MERGE = 2
RANDOM_INIT_NOTE = (
    "the vision encoder (ViT) is randomly initialised: no pretrained vision weights install "
    "offline, so it and the projector learn to see from the training images alone"
)


def tokens_per_image(vision: dict[str, Any], merge: int = MERGE) -> int:
    grid = vision["image_size"] // vision["patch_size"]
    return (grid // merge) ** 2


def check_vision(vision: dict[str, Any], merge: int = MERGE) -> None:
    grid, rest = divmod(vision["image_size"], vision["patch_size"])
    if rest or grid % merge:
        raise ValueError(
            f"image_size {vision['image_size']} must be a multiple of patch_size "
            f"{vision['patch_size']} x merge {merge}"
        )


def build_vision_language(lm: torch.nn.Module, hidden_size: int, vision: dict[str, Any] | None = None,
                          merge: int = MERGE) -> torch.nn.Module:
    """Wrap ``lm`` (a causal LM, possibly LoRA-wrapped) with a fresh ViT and projector."""
    import torch
    from transformers import ViTConfig, ViTModel

    settings = {**VISION_DEFAULTS, **(vision or {})}
    check_vision(settings, merge)
    encoder = ViTModel(ViTConfig(**settings), add_pooling_layer=False)
    width = settings["hidden_size"] * merge * merge
    projector = torch.nn.Sequential(
        torch.nn.Linear(width, hidden_size), torch.nn.GELU(), torch.nn.Linear(hidden_size, hidden_size)
    )
    return _module()(lm, encoder, projector, merge, tokens_per_image(settings, merge))


def _module():  # torch is imported lazily; the class is built on first use
    import torch

    class VisionLanguageModel(torch.nn.Module):
        def __init__(self, lm: torch.nn.Module, vision: torch.nn.Module, projector: torch.nn.Module,
                     merge: int, image_tokens: int) -> None:
            super().__init__()
            self.lm, self.vision, self.projector = lm, vision, projector
            self.merge, self.image_tokens = merge, image_tokens

        def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
            """[images, 3, S, S] -> [images, image_tokens, LM hidden]."""
            patches = self.vision(pixel_values=pixel_values).last_hidden_state[:, 1:]  # no CLS
            n, count, width = patches.shape
            grid, m = int(count**0.5), self.merge
            # [n, g, g, w] -> blocks of m x m neighbours, each flattened into one vector
            blocks = patches.reshape(n, grid // m, m, grid // m, m, width)
            blocks = blocks.permute(0, 1, 3, 2, 4, 5).reshape(n, (grid // m) ** 2, m * m * width)
            return self.projector(blocks)

        def embed(self, input_ids: torch.Tensor, image_mask: torch.Tensor | None,
                  pixel_values: torch.Tensor | None) -> torch.Tensor:
            """Token embeddings with the image slots (``image_mask``) replaced, in row-major
            order, by the projected patches of ``pixel_values`` (images in slot order)."""
            embeds = self.lm.get_input_embeddings()(input_ids)
            if pixel_values is None or image_mask is None or not len(pixel_values):
                return embeds
            images = self.image_embeddings(pixel_values).to(embeds.dtype)
            slots = int(image_mask.sum())
            if slots != images.shape[0] * images.shape[1]:
                raise ValueError(
                    f"{slots} image slots in the batch but {images.shape[0]} images x "
                    f"{images.shape[1]} tokens each"
                )
            return embeds.masked_scatter(image_mask.unsqueeze(-1), images.reshape(-1, images.shape[-1]))

        def forward(self, input_ids: torch.Tensor, image_mask: torch.Tensor | None = None,
                    pixel_values: torch.Tensor | None = None, **kwargs: Any) -> Any:
            embeds = self.embed(input_ids, image_mask, pixel_values)
            return self.lm(inputs_embeds=embeds, **kwargs)

    return VisionLanguageModel
