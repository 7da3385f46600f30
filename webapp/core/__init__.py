"""The model, knowing no web: the manifest's vocabulary, its verified files, its engines."""
