"""Inference on fitted models: F tests with Satterthwaite and Kenward-Roger denominator
degrees of freedom, likelihood-ratio tests, and confidence intervals (Wald, profile)."""
