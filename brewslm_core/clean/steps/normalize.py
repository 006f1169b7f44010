"""Normalise the record's human text (markup/entities, NFKC, whitespace), scan it for PII and,
under the ``mask`` policy, mask what is found (see ``clean.fields``). Never drops a row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fields import EditOptions, edit_record
from .base import KEEP, STEPS, Change, Doc, Verdict

if TYPE_CHECKING:
    from ..config import CleanConfig


@STEPS.register("normalize")
def normalize(cfg: CleanConfig):  # noqa: ANN201 - a RowStep
    opts = EditOptions(
        html_markup=cfg.strip_html,
        unicode_nfkc=cfg.unicode_nfkc,
        whitespace=cfg.whitespace,
        pii_types=cfg.pii_types if cfg.pii else None,
        mask_template=cfg.mask_template if cfg.pii and cfg.pii_policy == "mask" else None,
    )

    def step(doc: Doc) -> Verdict:
        out = edit_record(doc.shape, doc.record, opts)
        doc.edited()
        doc.findings, doc.offsets, doc.unmaskable = out.findings, out.offsets, out.unmaskable
        actions = sorted(out.steps)
        if out.findings and opts.mask_template and not out.unmaskable:
            actions.append("pii_mask")
        return Change(tuple(actions)) if actions else KEEP

    return step
