"""What a model is: its manifest, the roles of its tensors (layout), its files (formats/),
the store, the registry of loaded versions and their reload."""
