"""How each tensor must scale with width and depth: the parameterization table."""

from param.init import apply_init, init_model
from param.table import FIELDS, Row, Table, build_table, model_config

__all__ = ["FIELDS", "Row", "Table", "build_table", "model_config", "apply_init", "init_model"]
