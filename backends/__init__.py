"""The built-in adapters, one module per framework; each imports its framework only when used."""
