"""absl command-line apps: `python -m keras_eqssl.cli.NAME` or the `keras-eqssl-NAME` script."""
