"""tourapi: the backend for cultural-tourism night-tour apps."""

__version__ = "0.1.0"
