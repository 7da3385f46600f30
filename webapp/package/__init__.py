"""The offline tools: describe a fitted model's inputs and answers, compile and verify it.

Packaging runs where the model is made, never where it is served: nothing at serve time
imports this package (an import-linter contract), and the image and the function leave it out.
"""
