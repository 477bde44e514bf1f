"""Model scoring inside the engine: features and per-event scoring with delayed labels.

Owns the feature vectors the models see (:mod:`.features`) and scoring plus
delayed learning for one event (:mod:`.online`): sentiment, churn, fraud.
"""
