"""OpenVINO for nlseg on the CPU: IR files that carry nlseg's metadata, and INT8 with NNCF.

Nothing here imports OpenVINO at import time; :func:`nlseg.openvino.ir.import_openvino` turns a
missing package into one :class:`~nlseg.errors.InputError` line (``pip install 'nlseg[openvino]'``).

- :mod:`.ir`: read an nlseg ``.onnx`` export or an IR ``.xml``/``.bin`` with its metadata, write IR files;
- :mod:`.quantize`: post-training INT8 quantization with NNCF, calibrated on real frames.

The backend that runs them is :mod:`nlseg.runtime.openvino_backend`.
"""
