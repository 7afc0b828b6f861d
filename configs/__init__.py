"""Config files of `keras-eqssl-train` (`--config=configs/FILE.py`) and the recipes they share (`configs.common`)."""
