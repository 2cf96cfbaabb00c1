"""Dataset readers with validation, the one in-memory representation, and dataset statistics.

Formats: the Extreme Classification Repository's LF layout (raw texts and/or `*_X_Xf.txt`
features), its sparse BoW file, and JSON lines. See docs/data.md.
"""

from elmo_core.data.dataset import XMCDataset, XMCSplit
from elmo_core.data.loader import detect_format, load_dataset
from elmo_core.data.rows import EmptyRowsWarning
from elmo_core.data.stats import dataset_stats
from elmo_core.data.vocabulary import EMPTY_ROWS_POLICIES, FORMATS

__all__ = [
    "EMPTY_ROWS_POLICIES",
    "FORMATS",
    "EmptyRowsWarning",
    "XMCDataset",
    "XMCSplit",
    "dataset_stats",
    "detect_format",
    "load_dataset",
]
