"""What the network computes: a GPT-2 whose tensors carry a role (from their names) and
whose forward takes its multipliers from outside."""

from model.gpt import GPT, GPTConfig, Scales, count_params, flops_per_token
from model.roles import HIDDEN_ROLES, MATRIX_ROLES, ROLES, block_of, role_of

__all__ = ["GPT", "GPTConfig", "Scales", "count_params", "flops_per_token", "ROLES", "MATRIX_ROLES", "HIDDEN_ROLES", "role_of", "block_of"]
