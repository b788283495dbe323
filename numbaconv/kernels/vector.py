"""Short contiguous copies as whole vectors (AVX-512's or AVX2's, else 16 bytes).

Feature-map rows are 7-56 elements long; LLVM's vectorised copy loop takes 64 floats per trip, so a row of
31 is copied one element at a time. `copy_run` moves whole vectors instead, the last one overlapping
the one before (a copy may write an element twice), and copies runs shorter than one vector element by
element. The vector move is emitted as LLVM IR, unaligned, so it needs no alias analysis to vectorise.
"""

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from numbaconv.kernels import VECTOR_BYTES
from numbaconv.kernels.llvm_ir import element_pointer, llvm_float

MOVE_BYTES = VECTOR_BYTES or 16  # elsewhere, a 128-bit move, which every 64-bit CPU has


def _mover(vector: bool):
    """The intrinsic ``move(dst, d_off, src, s_off, like)``: ``dst[d_off : d_off + n] = src[s_off : s_off + n]``
    with n one vector's elements (or one element), dst and src data addresses, offsets in elements of
    ``like``'s float dtype; unaligned."""

    @intrinsic
    def move(typingctx, dst, d_off, src, s_off, like):
        signature = types.void(types.uintp, types.int64, types.uintp, types.int64, like)

        def codegen(context, builder, sig, args):
            dst_address, dst_offset, src_address, src_offset, _ = args
            ftype, bits = llvm_float(sig.args[-1].dtype)
            unit = ir.VectorType(ftype, MOVE_BYTES * 8 // bits) if vector else ftype

            value = builder.load(element_pointer(builder, src_address, src_offset, ftype, unit), align=4)
            builder.store(value, element_pointer(builder, dst_address, dst_offset, ftype, unit), align=4)
            return context.get_dummy_value()

        return signature, codegen

    return move


_move_vector = _mover(vector=True)
_move_element = _mover(vector=False)


@njit(cache=True, inline="always")
def copy_run(dst, d0, src, s0, count):
    """``dst.flat[d0 : d0 + count] = src.flat[s0 : s0 + count]`` for C-contiguous arrays (any dimensions)
    of one float dtype that do not overlap; flat offsets in elements."""
    lanes = MOVE_BYTES // dst.itemsize
    dst_address, src_address = dst.ctypes.data, src.ctypes.data
    if count < lanes:
        for q in range(count):
            _move_element(dst_address, d0 + q, src_address, s0 + q, dst)
        return
    q = 0
    while q < count - lanes:  # a while loop: range() with a step that is not a literal costs twice the copy
        _move_vector(dst_address, d0 + q, src_address, s0 + q, dst)
        q += lanes
    _move_vector(dst_address, d0 + count - lanes, src_address, s0 + count - lanes, dst)
