"""jdlens: reads job descriptions for AI roles and says which role they describe and what is wrong."""

__version__ = "0.1.0"
