"""anchorsr.sr stage."""
