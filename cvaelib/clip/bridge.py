"""Moved to :mod:`cvaelib.conditioning.bridge` (turning text into a condition is the conditioning layer's job);
kept so that ``from cvaelib.clip.bridge import text_anchor`` keeps working."""

from ..conditioning.bridge import BRIDGES, retrieve, text_anchor, text_conditions, text_start

__all__ = ["BRIDGES", "retrieve", "text_anchor", "text_conditions", "text_start"]
