"""deepkedi: Deep-KEDI medical image encryption."""

__version__ = "0.1.0"
