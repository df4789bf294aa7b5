"""Post-processing of label maps: connected components, label rules, decisions made on CV."""

from tumorseg.postprocessing.determine import determine_postprocessing
from tumorseg.postprocessing.rules import apply_postprocessing, preset_decision

__all__ = ["apply_postprocessing", "determine_postprocessing", "preset_decision"]
