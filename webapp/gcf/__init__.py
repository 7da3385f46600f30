"""The Cloud Function's entry file, main.py: what functions-framework loads by path (--source)."""
