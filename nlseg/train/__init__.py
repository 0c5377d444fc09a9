"""Training: the thesis recipe, the loop, metrics, run directories, data-parallel helpers."""
