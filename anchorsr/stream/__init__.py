"""anchorsr.stream stage."""
