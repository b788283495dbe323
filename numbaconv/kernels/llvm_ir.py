"""LLVM IR helpers of the kernels written as IR (the GEMM's register tile, `vector`'s moves)."""

from llvmlite import ir
from numba import types


def llvm_float(numba_type) -> tuple[ir.Type, int]:
    """The LLVM type of a float32/float64 element, and its width in bits."""
    return (ir.FloatType(), 32) if numba_type == types.float32 else (ir.DoubleType(), 64)


def element_pointer(builder, address, offset, ftype: ir.Type, as_type: ir.Type | None = None):
    """LLVM IR: a pointer to element ``offset`` (of type ftype) from the data address ``address``, cast to a
    pointer to ``as_type`` (a vector type, say) when given."""
    element = builder.gep(builder.inttoptr(address, ftype.as_pointer()), [offset])
    return element if as_type is None else builder.bitcast(element, as_type.as_pointer())
