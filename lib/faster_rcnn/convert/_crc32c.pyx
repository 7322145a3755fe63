# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""CRC-32C (Castagnoli), the checksum of TensorFlow checkpoints and LevelDB tables.

Slicing-by-8 over a 256 x 8 table: about a gigabyte per second on one core, without the GIL, so checking
the tensors of a published checkpoint (hundreds of MB) costs a fraction of reading them.
"""
from libc.stdint cimport uint32_t, uint64_t

cdef uint32_t _TABLE[8][256]


cdef void _build_table() noexcept:
    cdef uint32_t poly = 0x82F63B78  # the Castagnoli polynomial, bit-reversed
    cdef uint32_t c
    cdef int i, k, b
    for i in range(256):
        c = i
        for b in range(8):
            c = (c >> 1) ^ poly if (c & 1) else (c >> 1)
        _TABLE[0][i] = c
    for i in range(256):
        for k in range(1, 8):
            _TABLE[k][i] = (_TABLE[k - 1][i] >> 8) ^ _TABLE[0][_TABLE[k - 1][i] & 0xFF]


_build_table()


cdef inline uint32_t _load32(const unsigned char* p) noexcept nogil:
    # Byte by byte, so the result does not depend on the machine's endianness (compilers emit one load).
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef uint32_t _update(uint32_t crc, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef uint32_t lo, hi
    while n >= 8:
        lo = crc ^ _load32(p)
        hi = _load32(p + 4)
        crc = (_TABLE[7][lo & 0xFF] ^ _TABLE[6][(lo >> 8) & 0xFF] ^ _TABLE[5][(lo >> 16) & 0xFF]
               ^ _TABLE[4][lo >> 24] ^ _TABLE[3][hi & 0xFF] ^ _TABLE[2][(hi >> 8) & 0xFF]
               ^ _TABLE[1][(hi >> 16) & 0xFF] ^ _TABLE[0][hi >> 24])
        p += 8
        n -= 8
    while n > 0:
        crc = (crc >> 8) ^ _TABLE[0][(crc ^ p[0]) & 0xFF]
        p += 1
        n -= 1
    return crc


def crc32c(const unsigned char[::1] data, uint32_t value=0):
    """CRC-32C of ``data`` (any contiguous buffer of bytes); ``value`` continues an earlier checksum.

    >>> hex(crc32c(b'123456789'))
    '0xe3069283'
    """
    cdef uint32_t crc = ~value
    cdef Py_ssize_t n = data.shape[0]
    if n:
        with nogil:
            crc = _update(crc, &data[0], n)
    return ~crc & 0xFFFFFFFF


def mask(uint32_t crc):
    """The masked form TensorFlow and LevelDB store: rotate right by 15 bits, add 0xa282ead8."""
    cdef uint64_t rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    return (rotated + 0xa282ead8) & 0xFFFFFFFF
