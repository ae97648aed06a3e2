"""Demo traffic for the embedded default and for trying the operators' console."""
