"""Analysis of networks: parameter and multiply-add counts, spectra, where the errors go."""

from nlseg.analysis.cost import LayerCost, ModelCost, model_cost, report_layers

__all__ = ["LayerCost", "ModelCost", "model_cost", "report_layers"]
