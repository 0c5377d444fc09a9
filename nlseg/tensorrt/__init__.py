"""TensorRT for nlseg: the ``nlseg::PairwiseKernel`` plugin, engine building, engine metadata, serving.

Nothing here imports TensorRT at import time; the modules that need it import it inside
their functions through :func:`nlseg.tensorrt.compat.import_tensorrt`, which turns a missing
or too old TensorRT into one :class:`~nlseg.errors.InputError` line.

- :mod:`.rules`: the plugin's input/output contract and launch geometry as plain functions;
- :mod:`.graph`: the ONNX graph TensorRT parses (the plugin's preprocessing as standard ops);
- :mod:`.plugin`: the ``tensorrt.plugin`` definition (register, autotune, AOT kernel);
- :mod:`.compat`: TensorRT versions and the precision policy of TensorRT 10 and 11;
- :mod:`.shapes`: optimization-profile shapes; :mod:`.calibration`: INT8 calibration data;
- :mod:`.build`: ONNX → engine; :mod:`.engine_meta`: ``<stem>.engine.json``;
- :mod:`.model_repository`: Triton Inference Server model repositories.
"""
