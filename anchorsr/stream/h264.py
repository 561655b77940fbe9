"""Just enough H.264 bitstream parsing to tell whether motion reuse can use a stream as it is,
and at what frame rate a stream without timestamps (raw Annex B .h264) runs.

Reuse needs one reference frame and no reordering. The sequence parameter set (SPS) states
``max_num_ref_frames``, and its VUI the timing (``num_units_in_tick``, ``time_scale``); we read
it from the codec extradata (avcC, as in MP4) or from in-band Annex B NAL units (as in MPEG-TS,
RTMP after the first key frame, raw .h264).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


@dataclass(frozen=True)
class SpsInfo:
    profile_idc: int
    level_idc: int
    max_num_ref_frames: int
    # VUI timing_info (0 when absent): one frame lasts 2 ticks, so fps = time_scale / (2 * num_units_in_tick)
    num_units_in_tick: int = 0
    time_scale: int = 0

    @property
    def frame_rate(self) -> Fraction | None:
        """The frame rate the VUI states, or None (no timing info, or an implausible one)."""
        if not (self.num_units_in_tick and self.time_scale):
            return None
        rate = Fraction(self.time_scale, 2 * self.num_units_in_tick)
        # encoders that pass a timestamp clock (e.g. 1/90000) as the tick write no frame rate
        return rate if Fraction(1, 2) <= rate <= 300 else None


class _Bits:
    """Big-endian bit reader over an RBSP (emulation-prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]  # IndexError on truncated data, caught by caller
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    """Strip emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        last = nxt or last


def parse_sps(nal: bytes) -> SpsInfo:
    """Parse an SPS NAL unit (first byte = NAL header) up to ``max_num_ref_frames`` and, when
    the VUI carries one, its timing info (a truncated VUI leaves the timing at 0)."""
    bits = _Bits(_rbsp(nal[1:]))
    profile = bits.u(8)
    bits.u(8)  # constraint flags
    level = bits.u(8)
    bits.ue()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc == 3:
            bits.u(1)
        bits.ue()
        bits.ue()
        bits.u(1)
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    refs = bits.ue()
    try:
        tick, scale = _vui_timing(bits)
    except (IndexError, ValueError):
        tick, scale = 0, 0
    return SpsInfo(profile, level, refs, tick, scale)


def _vui_timing(bits: _Bits) -> tuple[int, int]:
    """From after ``max_num_ref_frames`` to the VUI's (num_units_in_tick, time_scale), or (0, 0)."""
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    bits.ue()  # pic_width_in_mbs_minus1
    bits.ue()  # pic_height_in_map_units_minus1
    if not bits.u(1):  # frame_mbs_only_flag
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    if bits.u(1):  # frame_cropping_flag
        for _ in range(4):
            bits.ue()
    if not bits.u(1):  # vui_parameters_present_flag
        return 0, 0
    if bits.u(1):  # aspect_ratio_info_present_flag
        if bits.u(8) == 255:  # Extended_SAR
            bits.u(32)
    if bits.u(1):  # overscan_info_present_flag
        bits.u(1)
    if bits.u(1):  # video_signal_type_present_flag
        bits.u(4)
        if bits.u(1):  # colour_description_present_flag
            bits.u(24)
    if bits.u(1):  # chroma_loc_info_present_flag
        bits.ue()
        bits.ue()
    if not bits.u(1):  # timing_info_present_flag
        return 0, 0
    return bits.u(32), bits.u(32)


def _annexb_nals(data: bytes) -> list[bytes]:
    nals, i, n = [], 0, len(data)
    starts = []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nals.append(data[s:e].rstrip(b"\x00"))
    return nals


def _length_prefixed_nals(data: bytes, size_len: int = 4) -> list[bytes]:
    nals, i = [], 0
    while i + size_len <= len(data):
        n = int.from_bytes(data[i:i + size_len], "big")
        i += size_len
        if n == 0 or i + n > len(data):
            return nals
        nals.append(data[i:i + n])
        i += n
    return nals


def _avcc_sps(extradata: bytes) -> list[bytes]:
    if len(extradata) < 8 or extradata[0] != 1:
        return []
    count, i, out = extradata[5] & 0x1F, 6, []
    for _ in range(count):
        n = int.from_bytes(extradata[i:i + 2], "big")
        out.append(extradata[i + 2:i + 2 + n])
        i += 2 + n
    return out


def find_sps(data: bytes | None) -> SpsInfo | None:
    """The first parsable SPS in extradata or a packet (avcC, Annex B or length-prefixed)."""
    if not data:
        return None
    if data[0] == 1:
        nals = _avcc_sps(data)
    elif b"\x00\x00\x01" in data[:64]:
        nals = _annexb_nals(data)
    else:
        nals = _length_prefixed_nals(data)
    for nal in nals:
        if nal and (nal[0] & 0x1F) == 7:
            try:
                return parse_sps(nal)
            except (IndexError, ValueError):
                continue
    return None
