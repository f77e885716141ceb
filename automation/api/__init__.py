"""The run API: records in, records out; it never drives the engine."""
