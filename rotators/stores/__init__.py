"""Secret stores the replacement credentials are written to."""
