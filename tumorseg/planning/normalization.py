"""Which intensity normalisation each modality gets: a planning decision, written into the plans.

The planner records one scheme name per channel; preprocessing implements the names
(``tumorseg.preprocessing.normalization``). A modality must be added to ``SCHEMES`` on purpose:
an unknown channel name is an error, never a silent z-score.
"""

from __future__ import annotations

from collections.abc import Sequence

from tumorseg.constants import Modality
from tumorseg.errors import TumorsegError

ZSCORE_BRAIN = "zscore_brain"

#: Every scheme name preprocessing implements; plans naming another one are rejected on load.
SCHEME_NAMES: tuple[str, ...] = (ZSCORE_BRAIN,)

#: Modality -> normalisation scheme name (stored in the plans, one per channel).
SCHEMES: dict[Modality, str] = {
    Modality.T1: ZSCORE_BRAIN,
    Modality.T1C: ZSCORE_BRAIN,
    Modality.T2: ZSCORE_BRAIN,
    Modality.FLAIR: ZSCORE_BRAIN,
}


def schemes_for(channel_names: Sequence[str]) -> tuple[str, ...]:
    """Scheme per channel from the channel names; an unknown name raises ``TumorsegError``."""
    out = []
    for name in channel_names:
        try:
            out.append(SCHEMES[Modality.parse(name)])
        except ValueError as exc:
            raise TumorsegError(
                f"dataset.json: {exc}; rename the channel in channel_names"
            ) from None
    return tuple(out)
