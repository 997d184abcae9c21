"""Custom Keras layers, registered for ``.keras`` loading under the ``dltoolkit`` package."""

from dltoolkit.layers.calibration import Calibration
from dltoolkit.layers.channels import ChannelReverse
from dltoolkit.layers.clustering import ClusteringLayer, target_distribution
from dltoolkit.layers.reconstruction import ReconstructionError
from dltoolkit.layers.series import SeriesFeatures
from dltoolkit.layers.som import SelfOrganizingMap, SOMSchedule, grid_coordinates, som_layers
from dltoolkit.layers.text import BackboneInputs

__all__ = [
    "BackboneInputs",
    "Calibration",
    "ChannelReverse",
    "ClusteringLayer",
    "ReconstructionError",
    "SOMSchedule",
    "SelfOrganizingMap",
    "SeriesFeatures",
    "grid_coordinates",
    "som_layers",
    "target_distribution",
]
