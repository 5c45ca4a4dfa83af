"""Text models for the CSV tests, importable by name in spawned model hosts (pickled by
reference: no lambdas, no closures)."""

from __future__ import annotations

from typing import Any

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from tests.zoo import TEXTS


class NoEmptyTexts(TfidfVectorizer):
    """A vectorizer that refuses an empty (or blank) text, as some text models do."""

    def transform(self, raw_documents: Any) -> Any:
        documents = list(raw_documents)
        if any(not str(d).strip() for d in documents):
            raise ValueError("an empty text cannot be scored")
        return super().transform(documents)


def refusing_empty_texts() -> Pipeline:
    labels = ["good", "bad"] * (len(TEXTS) // 2)
    model: Pipeline = make_pipeline(NoEmptyTexts(), LogisticRegression())
    return model.fit(TEXTS * 5, labels * 5)
