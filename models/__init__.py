"""Online models (River style: ``learn_one`` / ``predict_one``, seeded, picklable).

Nothing here imports Bytewax. Text normalisation lives in :mod:`models.text`.
"""
