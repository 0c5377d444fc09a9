"""Analysis of networks: parameter and multiply-add counts."""

from nlseg.analysis.cost import LayerCost, ModelCost, model_cost, report_layers

__all__ = ["LayerCost", "ModelCost", "model_cost", "report_layers"]
