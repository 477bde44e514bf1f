"""A realistic synthetic stream of customer interactions, with its ground truth.

See :class:`app.simulator.journeys.Simulator`. The ground truth
(latent traits, each text's true sentiment, who churns when, which offer a
customer would accept) is written beside the stream, never inside events.
"""

from app.simulator.journeys import Simulator, SimulatorConfig

__all__ = ["Simulator", "SimulatorConfig"]
