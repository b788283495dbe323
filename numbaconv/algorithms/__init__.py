"""Per-algorithm drivers: orchestrate kernels, workspaces and matrix products for one algorithm."""
