"""Datasets, image and label IO, joint transforms, class names and palettes."""
