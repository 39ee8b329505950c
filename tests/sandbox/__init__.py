"""Stand-ins for external programs used by the bootstrap sandbox tests."""
