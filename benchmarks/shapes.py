"""The benchmark shape suite: one source of truth, kept in the package so `numbaconv bench` has it too."""

from numbaconv.benchmark import BY_NAME, PASSES, SUITE, ConvShape, random_inputs, select

__all__ = ["BY_NAME", "PASSES", "SUITE", "ConvShape", "random_inputs", "select"]
