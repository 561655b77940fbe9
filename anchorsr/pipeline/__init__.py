"""anchorsr.pipeline stage."""
