"""Export: the whole detector as one graph (``graph.DetectorGraph``) to ONNX (``onnx_export``) and ``torch.export``
``.pt2`` files (``pt2_export``), and running an ONNX graph under ONNX Runtime (``runtime``)."""
