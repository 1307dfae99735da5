"""Compression techniques: plan types, registered handlers and apply_plan."""
from autocompress.compress.apply import apply_plan
from autocompress.compress.plan import (
                                        CompressionPlan,
                                        DistillConfig,
                                        PruneConfig,
                                        QuantConfig,
                                        TechniqueConfig,
)
from autocompress.compress.quantize import bake, fake_quantize, weight_bits

__all__ = ["CompressionPlan", "DistillConfig", "PruneConfig", "QuantConfig", "TechniqueConfig",
           "apply_plan", "bake", "fake_quantize", "weight_bits"]
