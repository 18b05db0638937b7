"""Credential rotators and revokers, one provider per module."""
