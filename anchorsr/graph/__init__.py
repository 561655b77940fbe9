"""anchorsr.graph stage."""
