"""nlseg: Nonlocal Hamiltonian networks for classification and driving-scene segmentation."""

__version__ = "0.1.0"
