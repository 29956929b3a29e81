# Numeric bounds of the compiled core and the overflow-safe integer helpers every module uses.
#
# Why these numbers: a price (ticks) or quantity (lots) is at most 2**53 (MAX_PRICE_TICKS / MAX_QTY_LOTS, equal to
# mmcore.instruments.MAX_UNITS; every instrument's own bound is below it), so a key +- a book window (< 2**23), a
# sum of two prices (< 2**54), a price difference times a quantity computed as a double, and the ``+- 1`` tick
# adjustments of the quoter all stay far inside int64. Update ids are at most 2**62 in magnitude (MAX_UPDATE_ID),
# so ``lastUpdateId + 1`` cannot overflow. Position and open-quantity accumulators are kept within +-2**62
# (MAX_ACCUM_LOTS), so a sum of two of them and a quantity fits int64. Products of two bounded values (notional =
# price * qty < 2**106) are computed in 128-bit integers (``int128``) or refused by an overflow-checked multiply;
# times (ns) are arbitrary int64 and only combined through the saturating ``sat_add`` / ``sat_sub`` or an
# unsigned difference. The venue edge (the decoder) refuses anything outside the instrument's tighter bounds as a
# malformed line; the compiled classes refuse anything outside these with ValueError (or a reason code).
from libc.stdint cimport int64_t

cdef extern from *:
    """
    #ifndef MMCORE_BOUNDS_H
    #define MMCORE_BOUNDS_H
    #include <stdint.h>
    #define MM_MAX_PRICE_TICKS ((int64_t)1 << 53)
    #define MM_MAX_QTY_LOTS ((int64_t)1 << 53)
    #define MM_MAX_UPDATE_ID ((int64_t)1 << 62)
    #define MM_MAX_ACCUM_LOTS ((int64_t)1 << 62)
    typedef __int128 mm_int128;
    /* a + b, clamped to [INT64_MIN, INT64_MAX] instead of wrapping. */
    static inline int64_t mm_sat_add(int64_t a, int64_t b) {
        int64_t r;
        if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
        return r;
    }
    /* a - b, clamped to [INT64_MIN, INT64_MAX] instead of wrapping. */
    static inline int64_t mm_sat_sub(int64_t a, int64_t b) {
        int64_t r;
        if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? INT64_MAX : INT64_MIN;
        return r;
    }
    /* 1 if a + b (resp. a * b) does not fit int64 (then *r is unspecified), else 0 and *r = the result. */
    static inline int mm_add_overflows(int64_t a, int64_t b, int64_t *r) { return __builtin_add_overflow(a, b, r); }
    static inline int mm_mul_overflows(int64_t a, int64_t b, int64_t *r) { return __builtin_mul_overflow(a, b, r); }
    #endif
    """
    const int64_t MAX_PRICE_TICKS "MM_MAX_PRICE_TICKS"     # largest price (ticks) the core accepts
    const int64_t MAX_QTY_LOTS "MM_MAX_QTY_LOTS"           # largest single quantity (lots) the core accepts
    const int64_t MAX_UPDATE_ID "MM_MAX_UPDATE_ID"         # largest |update id| the book accepts
    const int64_t MAX_ACCUM_LOTS "MM_MAX_ACCUM_LOTS"       # largest |position| / open quantity (lots) kept
    ctypedef long long int128 "mm_int128"                 # 128-bit intermediate (never converted to Python)
    int64_t sat_add "mm_sat_add"(int64_t a, int64_t b) noexcept nogil
    int64_t sat_sub "mm_sat_sub"(int64_t a, int64_t b) noexcept nogil
    bint add_overflows "mm_add_overflows"(int64_t a, int64_t b, int64_t* r) noexcept nogil
    bint mul_overflows "mm_mul_overflows"(int64_t a, int64_t b, int64_t* r) noexcept nogil
