"""Reading programs in languages other than Python: tokens without comments, and numeric literals.

Python has its own readers (the tokenize module, the syntax tree in tools/canonical.py). For the
rest, two lexers cover the languages evomcp evolves: "c" (C, C++ and the C-like: `//` and `/* */`
comments, 'c' characters, C++ raw strings, digit separators 1'000, suffixes 1.0f 10u 0x1FULL) and
"rust" (nested block comments, raw strings r#"..."#, lifetimes 'a, 1_000, 1.0_f64, 2u8, tuple
fields x.0 that are not numbers to tune). Both keep strings and characters whole and never look
inside them or inside comments.

- `tokens` is what novelty embeds and fingerprints: comments and formatting gone, every number
  written by its value and type (0x10 and 16 are one number; 1.0f and 1.f too);
- `literals` is what the offline operator nudges: the spans of numeric literals of a region;
- `nudged` writes a literal's new value in its own style (base, suffix) and sign.

The server reads every proposal with these, so they take linear time whatever the code: no pattern
backtracks (possessive quantifiers), an unterminated string or raw string ends at its line or at the
end, and a run of digits and letters is checked as a number only when it is short.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

_SUFFIX_C_INT = r"(?:[uU](?:ll|LL|[lLzZ])?|(?:ll|LL|[lLzZ])[uU]?)?"
_SUFFIX_C_FLOAT = r"(?:[fFlL]|f16|f32|f64|f128|bf16|F16|F32|F64|F128|BF16)?"
_RUST_TYPES = r"(?:i8|i16|i32|i64|i128|isize|u8|u16|u32|u64|u128|usize|f32|f64)"
_DIGITS_C = r"\d(?:'?\d)*"
_HEX_C = r"[0-9a-fA-F](?:'?[0-9a-fA-F])*"

_C_NUMBER = (
    rf"0[xX]{_HEX_C}{_SUFFIX_C_INT}(?![\w.])"
    rf"|0[bB][01](?:'?[01])*{_SUFFIX_C_INT}(?![\w.])"
    rf"|(?:{_DIGITS_C})?\.{_DIGITS_C}(?:[eE][-+]?\d+)?{_SUFFIX_C_FLOAT}(?!\w)"
    rf"|{_DIGITS_C}\.(?![.\w])"  # 1.
    rf"|{_DIGITS_C}\.(?:[eE][-+]?\d+){_SUFFIX_C_FLOAT}(?!\w)"
    rf"|{_DIGITS_C}\.[fFlL](?!\w)"
    rf"|{_DIGITS_C}[eE][-+]?\d+{_SUFFIX_C_FLOAT}(?!\w)"
    rf"|{_DIGITS_C}{_SUFFIX_C_INT}(?!\w)"
)
_RUST_NUMBER = (
    rf"0x[0-9a-fA-F_]*[0-9a-fA-F]_*{_RUST_TYPES}?(?!\w)"
    rf"|0o[0-7_]*[0-7]_*{_RUST_TYPES}?(?!\w)"
    rf"|0b[01_]*[01]_*{_RUST_TYPES}?(?!\w)"
    rf"|\d[\d_]*\.\d[\d_]*(?:[eE][-+]?_*\d[\d_]*)?_*(?:f32|f64)?(?!\w)"
    rf"|\d[\d_]*(?:\.\d[\d_]*)?[eE][-+]?_*\d[\d_]*_*(?:f32|f64)?(?!\w)"
    rf"|\d[\d_]*\.(?![.\w])"  # 1.
    rf"|\d[\d_]*_*{_RUST_TYPES}?(?!\w)"
)
# Strings and characters end at their quote, or (unterminated) at the end of the line: never rescanned.
_STRING = r'"(?:\\.|[^"\\\n])*\\?(?:"|(?=\n)|\Z)'
_C_CHAR = r"'(?:\\.|[^'\\\n])*\\?(?:'|(?=\n)|\Z)"
_RUST_CHAR = r"'(?:\\.|[^'\\\n])'"
_IDENT = r"[A-Za-z_]\w*"
# A run that may be a number: read in one linear step, then checked against the language's number syntax
# only if short (_NUMBERS); a longer or malformed run is one `other` lexeme. Hostile code (100,000 digits
# and a letter, say) costs linear time, not quadratic. No possessive quantifier here or above: each
# repetition's alternatives start with different characters, so nothing backtracks, and Python 3.11 before
# 3.11.5 matched `(?:...)*+` wrongly (an empty number, on which a scanner would stand still).
_NUMBER_RUN = r"(?:\d|\.\d)(?:[\w']|\.(?!\.)|(?<=[eE])[-+](?=\d))*"
_NUMBER_MAX = 64
_NUMBERS = {"c": re.compile(_C_NUMBER), "rust": re.compile(_RUST_NUMBER)}

_LEXERS = {
    "c": re.compile(
        rf"(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))"
        rf"|(?P<raw>R\"(?P<delim>[^()\\\s]{{0,16}})\((?:.*?\)(?P=delim)\"|.*\Z))"
        rf"|(?P<number>{_NUMBER_RUN})|(?P<string>{_STRING}|{_C_CHAR})|(?P<ident>{_IDENT})|(?P<other>.)",
        re.DOTALL),
    "rust": re.compile(
        rf"(?P<space>\s+)|(?P<comment>//[^\n]*|/\*)"
        rf"|(?P<raw>b?r(?P<hashes>#*)\"(?:.*?\"(?P=hashes)|.*\Z))"
        rf"|(?P<number>{_NUMBER_RUN})|(?P<string>b?{_STRING}|b?{_RUST_CHAR})|(?P<ident>{_IDENT})|(?P<other>.)",
        re.DOTALL),
}


class Literal(NamedTuple):
    start: int
    end: int
    text: str


def lexer_of(language: str) -> str:
    from ..evaluators import languages

    return languages.get(language).lexer


def _rust_block_end(code: str, start: int) -> int:
    """Where a Rust block comment opened at `start` ends (they nest)."""
    depth, i = 0, start
    while i < len(code):
        two = code[i:i + 2]
        if two == "/*":
            depth, i = depth + 1, i + 2
        elif two == "*/":
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(code)


def _scan(code: str, lexer: str):
    """(kind, start, end) of every lexeme of `code`: space, comment, raw, number, string, ident, other."""
    pattern = _LEXERS["rust" if lexer == "rust" else "c"]
    i = 0
    while i < len(code):
        match = pattern.match(code, i)
        if match is None:  # cannot happen (`other` takes any character); stay safe
            yield "other", i, i + 1
            i += 1
            continue
        kind = match.lastgroup if match.lastgroup not in ("delim", "hashes") else "raw"
        end = match.end()
        if kind == "comment" and lexer == "rust" and match.group(0) == "/*":
            end = _rust_block_end(code, i)
        elif kind == "number":
            run = code[i:end]
            number = _NUMBERS["rust" if lexer == "rust" else "c"].match(run) if len(run) <= _NUMBER_MAX else None
            if number is None or number.end() == 0:
                kind = "other"  # not a number of the language (too long, a user-defined literal, 12abc)
            else:
                end = i + number.end()  # the literal, and what follows it (".", "..", a suffix) on its own
        if end <= i:  # an empty lexeme would leave the scanner where it is: one character, whatever it is
            kind, end = "other", i + 1
        yield kind, i, end
        i = end


def split_number(text: str) -> tuple[str, str]:
    """(digits, suffix) of a literal: "1.5f" -> ("1.5", "f"); "10_u32" -> ("10", "_u32"); "0x1FULL" -> ("0x1F",
    "ULL")."""
    if text[:2].lower() in ("0x", "0b", "0o"):
        match = re.match(r"(0[xXbBoO][0-9a-fA-F_']*?)(_*(?:[iu](?:8|16|32|64|128|size))|[uUlLzZ]+)?$", text)
    else:
        match = re.match(r"([\d_'.]*(?:[eE][-+]?[\d_]+)?)(_*(?:[iuf](?:8|16|32|64|128|size))|[fFlLuUzZ]+|bf16|BF16|"
                         r"[fF](?:16|32|64|128))?$", text)
    if match is None:
        return text, ""
    digits, suffix = match.group(1), match.group(2) or ""
    if suffix and digits.endswith("_"):  # Rust's 1.0_f64: the separator goes with the type
        stripped = digits.rstrip("_")
        digits, suffix = stripped, digits[len(stripped):] + suffix
    return digits, suffix


def value_of(text: str) -> int | float | None:
    """The value a literal stands for (an int for integer literals), None when it cannot be read."""
    digits, suffix = split_number(text)
    clean = digits.replace("_", "").replace("'", "")
    is_float = (("." in clean or ("e" in clean.lower() and not clean.lower().startswith("0x")))
                or suffix.lstrip("_").lower() in ("f", "f16", "f32", "f64", "f128", "bf16")
                or (suffix.lower() == "l" and "." in clean))
    try:
        if is_float:
            return float(clean)
        if len(clean) > 1 and clean[0] == "0" and clean[1].isdigit():
            return int(clean, 8)  # C's octal 017
        return int(clean, 0)
    except ValueError:
        return None


def _normal(text: str) -> str:
    """A number token by value and type: 0x10 is 16, 1.f is 1.0f, 1_000_u32 is 1000u32."""
    value = value_of(text)
    if value is None:
        return text
    suffix = split_number(text)[1].lstrip("_").lower()
    return f"{value!r}{suffix}"


def tokens(code: str, language: str) -> list[str]:
    """The tokens of `code` without comments and whitespace; numbers written by value and type."""
    lexer = lexer_of(language)
    out = []
    for kind, start, end in _scan(code, lexer):
        if kind in ("space", "comment"):
            continue
        text = code[start:end]
        out.append(_normal(text) if kind == "number" else text)
    return out


def literals(region: str, language: str) -> list[Literal]:
    """The numeric literals of a region (what the offline operator may nudge): not in comments or strings,
    and for Rust not a tuple field (x.0)."""
    lexer = lexer_of(language)
    found, previous = [], ""
    for kind, start, end in _scan(region, lexer):
        if kind in ("space", "comment"):
            continue
        if kind == "number" and not (lexer == "rust" and previous == "."):
            found.append(Literal(start, end, region[start:end]))
        previous = region[start:end]
    return found


def is_integer(text: str) -> bool:
    return isinstance(value_of(text), int)


def nudged(text: str, rng: np.random.Generator, scales: tuple[float, ...]) -> str | None:
    """`text` with a nudged value in the same style (base, suffix); None to leave it. Integers move by one
    (rarely: counts and indices; never 0 or 1); decimals by a relative step of one of `scales`. A literal
    is never signed (the minus is an operator), so the new one is not negative either."""
    value = value_of(text)
    if value is None:
        return None
    digits, suffix = split_number(text)
    if isinstance(value, int):
        if value in (0, 1) or rng.random() < 0.5:
            return None
        new = max(0, value + int(rng.choice([-1, 1])))
        prefix = digits[:2].lower()
        body = {"0x": lambda v: digits[:2] + format(v, "X" if digits[2:].upper() == digits[2:] else "x"),
                "0b": lambda v: digits[:2] + format(v, "b"), "0o": lambda v: digits[:2] + format(v, "o")}
        if prefix in body:
            return body[prefix](new) + suffix
        if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
            return "0" + format(new, "o") + suffix
        return str(new) + suffix
    scale = float(rng.choice(scales))
    new_value = abs(value * (1.0 + rng.normal(0.0, scale)) if value != 0 else rng.normal(0.0, scale))
    written = repr(float(f"{new_value:.8g}"))
    if "e" in written and "." not in written.split("e")[0]:
        mantissa, exponent = written.split("e")
        written = f"{mantissa}.0e{exponent}"  # 1.0e-05: a decimal point in every language
    return written + suffix
