"""Online models (River style: ``learn_one`` / ``predict_one``, seeded, picklable).

Sentiment, churn, fraud and offer propensity models, their progressive
validation and the per-partition registry that names champion and challenger.
Layer: just above the kernel; imports nothing of ``operators``, ``state`` or
``flows``, and never Bytewax. Text normalisation lives in :mod:`models.text`.
"""
