"""anchorsr.bench stage."""
