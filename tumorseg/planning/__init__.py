"""Self-configuration: dataset fingerprint -> plans (a pure function) -> plans JSON."""
