"""Compression techniques: plan types, registered handlers and apply_plan."""
from autocompress.compress.apply import apply_plan
from autocompress.compress.plan import (
                                        ClusterConfig,
                                        CompressionPlan,
                                        DistillConfig,
                                        LowRankConfig,
                                        PruneConfig,
                                        QuantConfig,
                                        SparsityConfig,
                                        TechniqueConfig,
)
from autocompress.compress.quantize import bake, fake_quantize, weight_bits
from autocompress.compress.size import SizeReport, stored_bytes

__all__ = ["ClusterConfig", "CompressionPlan", "DistillConfig", "LowRankConfig", "PruneConfig",
           "QuantConfig", "SizeReport", "SparsityConfig", "TechniqueConfig", "apply_plan", "bake",
           "fake_quantize", "stored_bytes", "weight_bits"]
