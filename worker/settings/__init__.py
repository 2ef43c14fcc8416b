"""Settings: the YAML configuration file as typed models, loaded with errors that say where."""

from worker.settings.errors import ConfigError, ConfigErrors
from worker.settings.loader import default_config_dir, load_config
from worker.settings.models import Cadence, Config, Step

__all__ = ["Cadence", "Config", "ConfigError", "ConfigErrors", "Step", "default_config_dir",
           "load_config"]
