"""A module beside the evaluation script, imported by name as a plain script in this folder would."""

TARGET = 3.0


def distance(value):
    return abs(value - TARGET)
