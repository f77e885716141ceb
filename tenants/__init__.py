"""The tenant spec: file format, loading with positions, and the plan table. No Pulumi here."""
