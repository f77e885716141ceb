"""Fakes of upstream systems that run for real on loopback."""
