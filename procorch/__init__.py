"""procorch: Kubernetes for plain OS processes."""

__version__ = "0.1.0"
