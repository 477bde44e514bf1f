"""The application on top of the engine: CLI, demo, simulator, evaluation tools.

Everything here may import every layer below (kernel ``livesignals``, ``models``,
``operators``, ``state``, ``flows``); nothing below imports it. The
``livesignals`` console script is :func:`app.cli.main`.
"""
