"""`get_config` read from attributes named like the constructor's arguments.

Most of the package's layers, models and optimizers keep each constructor argument in an
attribute of the same name, so their `get_config` is the base class's plus those attributes. A
class lists the names once (`config_attributes`, those saved as lists in `config_as_lists`) and
`AttributeConfig` writes them; each class of a hierarchy lists only the arguments it adds.

Example:
>>> import keras
>>> class Scale(AttributeConfig, keras.layers.Layer):
...     config_attributes = ("factor", "axes")
...     config_as_lists = ("axes",)
...     def __init__(self, factor=2.0, axes=(1,), **kwargs):
...         super().__init__(**kwargs)
...         self.factor, self.axes = factor, tuple(axes)
>>> config = Scale(axes=(1, 2), name="scale").get_config()
>>> config["factor"], config["axes"]
(2.0, [1, 2])
"""

from __future__ import annotations


class AttributeConfig:
    """Mixin: `get_config` is the next base's plus the attributes each class of the hierarchy lists.

    Class attributes of a subclass (each class lists only its own arguments):
        config_attributes: names of the attributes saved under the same name, in that order.
        config_as_lists: those of them that are sequences, saved as lists.
    """

    config_attributes: tuple[str, ...] = ()
    config_as_lists: tuple[str, ...] = ()

    def get_config(self) -> dict:
        config = super().get_config()
        for klass in reversed(type(self).__mro__):
            as_lists = klass.__dict__.get("config_as_lists", ())
            for name in klass.__dict__.get("config_attributes", ()):
                value = getattr(self, name)
                config[name] = list(value) if name in as_lists else value
        return config
