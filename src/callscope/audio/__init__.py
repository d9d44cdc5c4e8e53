"""From RTP payloads to recordings: the codec registry (G.711 by lookup table, G.722,
G.729 and Opus through PyAV), the per-call spool of raw payloads, alignment of both
directions on the call timeline into stereo (caller left, callee right), Opus-in-Ogg
encoding, waveform peaks, and chunked AES-256-GCM encryption. No database and no clock.
"""
