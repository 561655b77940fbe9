"""Sources and sinks: decode with motion vectors, transcode unsupported input, write video (with
the input's audio and timestamps)."""

from .audio import AudioFeed, AudioOutput
from .decode import DecodeStats, VideoSource, open_frames
from .encode import EncodeSettings, VideoWriter, write_clip
from .frames import resize_yuv, rgb_to_yuv, yuv_to_frame, yuv_to_rgb
from .sinks import (HLS_PLAYLIST, FileSink, HlsPlaylist, MuxSink, Sink, hls_options, hls_sink, is_hls_target,
                    open_sink)

__all__ = ["AudioFeed", "AudioOutput", "DecodeStats", "VideoSource", "open_frames", "EncodeSettings", "VideoWriter",
           "write_clip", "resize_yuv", "rgb_to_yuv", "yuv_to_frame", "yuv_to_rgb", "HLS_PLAYLIST", "FileSink",
           "HlsPlaylist", "MuxSink", "Sink", "hls_options", "hls_sink", "is_hls_target", "open_sink"]
