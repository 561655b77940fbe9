"""anchorsr.schedule stage."""
