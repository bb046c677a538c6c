"""Scaling factors written as small formulas in the YAML of a parameterization, e.g.
"1/m * r^(alpha-1)", evaluated safely (no eval) and rendered back for tables and docs.

Variables: m = width/base_width, r = depth/base_depth, L = depth, k = block depth,
alpha = depth exponent of the residual branch. Functions: sqrt. Operators: + - * / ^ (or **).
"""

from __future__ import annotations

import ast
import math
import operator

from errors import UserError

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCS = {"sqrt": math.sqrt}


FLOAT32_MAX, FLOAT32_TINY = 3.4028234663852886e38, 1.1754943508222875e-38  # torch.finfo(torch.float32)


def evaluate(expr, env: dict[str, float | None], where: str = "") -> float:
    """Value of a number or formula string; UserError (naming `where` and the formula) if it is
    malformed, divides by zero, overflows, is not real, or leaves float32's range (the tensors'
    dtype: bf16 has the same exponent range) at this env's m and r."""
    try:
        value = _evaluate(expr, env, where)
    except ZeroDivisionError:
        problem = "divides by zero"
    except OverflowError:
        problem = "overflows"
    except ValueError as e:  # math domain error: sqrt(-1)
        problem = f"is undefined ({e})"
    else:
        if isinstance(value, complex):
            problem = "is not a real number (a fractional power of a negative number)"
        elif not math.isfinite(value):
            problem = f"is {value}"
        elif abs(value) > FLOAT32_MAX or 0 < abs(value) < FLOAT32_TINY:
            problem = f"= {value:.3g}, outside float32's range"
        else:
            return float(value)
    at = ", ".join(f"{k}={env[k]:g}" for k in ("m", "r") if isinstance(env.get(k), (int, float)))
    raise UserError(f"{where}: {expr!r} {problem}" + (f" at {at}" if at else "") +
                    ": fix the formula (it must give a finite number for the widths and depths you train)")


def _evaluate(expr, env: dict[str, float | None], where: str = ""):
    """The formula's value (ArithmeticError / ValueError / a complex number left to the caller)."""
    if isinstance(expr, bool):
        raise UserError(f"{where}: {expr!r} is not a number or formula")
    if isinstance(expr, (int, float)):
        return float(expr)
    text = str(expr).replace("^", "**")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise UserError(f"{where}: cannot parse formula {expr!r} (use m, r, L, k, alpha, sqrt, + - * / ^)") from None

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise UserError(f"{where}: unknown name {node.id!r} in {expr!r} (use m, r, L, k, alpha)")
            if env[node.id] is None:
                raise UserError(f"{where}: {expr!r} uses {node.id}, which this parameterization leaves unset (set param.{node.id})")
            return float(env[node.id])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and len(node.args) == 1:
            return _FUNCS[node.func.id](walk(node.args[0]))
        raise UserError(f"{where}: {expr!r} may only use numbers, m, r, L, k, alpha, sqrt() and + - * / ^")

    return walk(tree)


def monomial(expr, env: dict, where: str = "") -> tuple[float, float, float] | None:
    """(c, p, q) with expr = c·m^p·r^q for this env's other variables, or None if it is not
    a monomial in m and r (checked at a third point) or uses the absolute depth L."""
    if not isinstance(expr, (int, float)) and "L" in {n.id for n in ast.walk(ast.parse(str(expr).replace("^", "**"), mode="eval")) if isinstance(n, ast.Name)}:
        return None

    def at(m, r):
        return _evaluate(expr, {**env, "m": m, "r": r}, where)

    try:  # probed at other m and r than the run's, where the formula may overflow: then no monomial
        c = at(1.0, 1.0)
        if not isinstance(c, float) or not math.isfinite(c) or c == 0:
            return None
        a, b = at(2.0, 1.0) / c, at(1.0, 2.0) / c
        if not all(isinstance(x, float) and math.isfinite(x) and x > 0 for x in (a, b)):
            return None
        p, q = math.log2(a), math.log2(b)
        return (c, p, q) if math.isclose(at(3.0, 5.0), c * 3.0**p * 5.0**q, rel_tol=1e-9) else None
    except (ArithmeticError, ValueError, TypeError):
        return None


def _power(sym: str, e: float) -> str:
    e = round(e, 6)
    a = abs(e)
    if a == 1:
        return sym
    if a == 0.5:
        return f"√{sym}"
    if a == 2:
        return f"{sym}²"
    return f"{sym}^{a:g}"


def render(expr, env: dict, base: str = "", where: str = "") -> str:
    """A formula as a reader writes it: `η/(m√r)`, `λ·m`, `σ/√(2L)` falls back to the text."""
    mono = monomial(expr, env, where)
    if mono is None:
        text = str(expr).replace("**", "^").replace("*", "·").replace("sqrt", "√")
        return f"{base}·{text}" if base else text
    c, p, q = mono
    num = [_power(s, e) for s, e in (("m", p), ("r", q)) if round(e, 6) > 0]
    den = [_power(s, e) for s, e in (("m", p), ("r", q)) if round(e, 6) < 0]
    coef = "" if math.isclose(c, 1.0) else f"{c:g}"
    head = "·".join(x for x in (base, coef, *num) if x) or "1"
    if not den:
        return head
    if len(den) == 1:
        return f"{head}/{den[0]}"
    if all(x.startswith("√") and len(x) == 2 for x in den):
        return f"{head}/√({'·'.join(x[1] for x in den)})"  # η/√(m·r)
    d = "".join(den) if all(x.startswith("√") for x in den[1:]) else "·".join(den)
    return f"{head}/({d})"
