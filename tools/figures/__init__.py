"""The documentation's pictures, made by code: `python tools/make_figures.py --only NAME` (see there)."""
