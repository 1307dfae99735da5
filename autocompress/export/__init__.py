"""Export of a chosen trial to deployment artifacts (ONNX fp32 + int8 QDQ, manifest)."""
