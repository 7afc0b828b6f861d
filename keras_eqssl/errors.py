"""The package's error type for bad input a user can act on.

`InputError` marks an error whose message names the config field, file, directory or shape that
is wrong and says what to do. The command-line apps print such an error as one line on stderr
and exit with status 2 (`KERAS_EQSSL_DEBUG=1` shows the traceback instead); any other exception
is a bug and keeps its traceback. Concrete errors subclass both `InputError` and the builtin
they are (`ConfigError` is a `ValueError`, `CheckpointWriteError` an `OSError`), so existing
`except ValueError` code keeps working.

Example:

```python
from keras_eqssl.errors import ConfigError, InputError

issubclass(ConfigError, InputError) and issubclass(ConfigError, ValueError)  # True
```
"""


class InputError(Exception):
    """Bad input (config, file, data root, checkpoint, shape); the message says which and what to do."""


class ConfigError(InputError, ValueError):
    """A config field is unknown, of the wrong type, or has an impossible value."""
