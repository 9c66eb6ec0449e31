"""diversion: run police drug diversion schemes from the command line."""

__version__ = "0.1.0"
