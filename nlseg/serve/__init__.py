"""Serving on a real Triton Inference Server (``nlseg serve``) and the client that runs a Segmenter on one.

:mod:`nlseg.serve.contract` is the wire contract (model ``nlseg``: ``image`` BYTES in, ``mask`` BYTES out);
:mod:`nlseg.serve.server` binds a :class:`~nlseg.api.Segmenter` as a Triton model through ``nvidia-pytriton``
(extra ``[serve]``); :mod:`nlseg.serve.client` is the backend ``nlseg.load("grpc://HOST:8001/nlseg")`` opens.
"""
