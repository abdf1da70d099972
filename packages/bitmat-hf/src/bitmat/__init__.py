"""The original BitMat names (see bitmat_hf)."""
