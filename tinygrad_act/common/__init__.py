"""What every layer shares: the error types, the registry pattern, input validation, the version."""

__version__ = "0.1.0"
