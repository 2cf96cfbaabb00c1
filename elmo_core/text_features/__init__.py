"""Text featurizers below the encoders and the fusion priors: word and character TF-IDF.

Both are fitted on the train texts only, computed with numpy/scipy (no Python loop over n-grams
where it can be avoided) and stored as plain JSON or arrays. The `tfidf` encoder and the neighbour
prior share one word TF-IDF (`elmo_core.model.scoring.shared_word_featurizer`).
"""

from elmo_core.text_features.char_tfidf import CharTfidf
from elmo_core.text_features.word_tfidf import TfidfFeaturizer, l2_normalize_rows, tokenize

__all__ = ["CharTfidf", "TfidfFeaturizer", "l2_normalize_rows", "tokenize"]
