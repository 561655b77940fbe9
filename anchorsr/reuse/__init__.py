"""anchorsr.reuse stage."""
