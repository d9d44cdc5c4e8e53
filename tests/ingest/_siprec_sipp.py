"""SIPp as a SIPREC recording client (SRC): the scenario and the two-stream audio it plays.

Used by the live test and by bench/siprec_capacity.py. The scenario sends a SIPREC INVITE
(``Require: siprec``, ``+sip.src``, multipart SDP + RFC 7865 metadata) with two labelled
sendonly PCMA streams, ACKs the 200 OK, plays `two_stream_pcap` with ``play_pcap_audio``
and hangs up. SIPp sends each packet of a capture to the answered audio port plus the
packet's own port offset (its ``send_packets.c``), so the capture's stream to port +2
reaches the second answered port: the recording server gives the ports of one answer
next to each other.

The metadata lists the caller first (市民 花子, 0312345678) but has her send label 2, and
the callee (市民課 窓口, 2001) send label 1: a recorder that took the labels' order for
the channels would put the callee left. The caller's stream is the speech of SIPp's
g711a.pcap, the callee's A-law silence, so the channels can be told apart in the spool.
"""

from __future__ import annotations

import struct
from pathlib import Path

G711A = Path("/usr/share/sip-tester/g711a.pcap")
SILENCE = 0xD5  # A-law code of a zero sample
CALLER = ("0312345678", "市民 花子")
CALLEE = ("2001", "市民課 窓口")

SCENARIO = """<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="SIPREC recording client with two labelled streams">
  <send retrans="500">
    <![CDATA[
      INVITE sip:srs@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "録音クライアント" <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:srs@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:src@[local_ip]:[local_port]>;+sip.src
      Require: siprec
      Max-Forwards: 70
      Content-Type: multipart/mixed;boundary=siprec-boundary
      Content-Length: [len]

      --siprec-boundary
      Content-Type: application/sdp

      v=0
      o=- [call_number] 1 IN IP[local_ip_type] [media_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
      a=label:1
      a=sendonly
      m=audio [media_port+2] RTP/AVP 8
      a=rtpmap:8 PCMA/8000
      a=label:2
      a=sendonly

      --siprec-boundary
      Content-Type: application/rs-metadata+xml
      Content-Disposition: recording-session

      <?xml version="1.0" encoding="UTF-8"?>
      <recording xmlns="urn:ietf:params:xml:ns:recording:1">
      <datamode>complete</datamode>
      <session session_id="cs-[call_number]"><sipSessionID>[call_id]</sipSessionID></session>
      <participant participant_id="caller-[call_number]">
      <nameID aor="sip:CALLER_NUMBER@pbx.city.example">
      <name xml:lang="ja">CALLER_NAME</name></nameID>
      </participant>
      <participant participant_id="callee-[call_number]">
      <nameID aor="sip:CALLEE_NUMBER@pbx.city.example">
      <name xml:lang="ja">CALLEE_NAME</name></nameID>
      </participant>
      <stream stream_id="a-[call_number]" session_id="cs-[call_number]"><label>1</label></stream>
      <stream stream_id="b-[call_number]" session_id="cs-[call_number]"><label>2</label></stream>
      <participantstreamassoc participant_id="caller-[call_number]">
      <send>b-[call_number]</send><recv>a-[call_number]</recv>
      </participantstreamassoc>
      <participantstreamassoc participant_id="callee-[call_number]">
      <send>a-[call_number]</send><recv>b-[call_number]</recv>
      </participantstreamassoc>
      </recording>
      --siprec-boundary--
    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>

  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "録音クライアント" <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:srs@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>

  <nop>
    <action>
      <exec play_pcap_audio="two_streams.pcap"/>
    </action>
  </nop>

  <pause milliseconds="HOLD_MS"/>

  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "録音クライアント" <sip:src@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:srs@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>

  <recv response="200"/>
</scenario>
"""


def scenario(hold_ms: int = 6000) -> str:
    """The SRC scenario; the call lasts ``hold_ms`` after the ACK (audio is 4.72 s)."""
    return (
        SCENARIO.replace("CALLER_NUMBER", CALLER[0]).replace("CALLER_NAME", CALLER[1])
        .replace("CALLEE_NUMBER", CALLEE[0]).replace("CALLEE_NAME", CALLEE[1])
        .replace("HOLD_MS", str(hold_ms))
    )  # fmt: skip


def rtp_packets(pcap: Path = G711A) -> list[tuple[int, bytes]]:
    """``(time in µs, RTP packet)`` of every UDP packet of an Ethernet/IPv4 capture."""
    data = pcap.read_bytes()
    found: list[tuple[int, bytes]] = []
    offset = 24
    while offset + 16 <= len(data):
        sec, usec, caplen, _length = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        ihl = (frame[14] & 0x0F) * 4
        if frame[12:14] == b"\x08\x00" and frame[23] == 17:
            found.append((sec * 1_000_000 + usec, frame[14 + ihl + 8 :]))
    return found


def _frame(src_port: int, dst_port: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
        bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]),
    )  # fmt: skip
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + udp


def two_stream_pcap(out: Path, loops: int = 1) -> int:
    """Write the two streams: to port 6000 (label 1, the callee) A-law silence, to 6002
    (label 2, the caller) the speech of g711a.pcap, same timing, ``loops`` times in a row
    (sequence numbers and timestamps run on); returns packets per stream."""
    packets = rtp_packets()
    span = packets[-1][0] - packets[0][0] + 20_000
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for loop in range(loops):
        for micros, packet in packets:
            header = bytearray(packet[:12])
            seq, stamp = struct.unpack_from("!HI", header, 2)
            struct.pack_into(
                "!HI", header, 2, (seq + loop * len(packets)) & 0xFFFF,
                (stamp + loop * len(packets) * 160) & 0xFFFFFFFF,
            )  # fmt: skip
            silent = bytearray(header)
            struct.pack_into("!I", silent, 8, 0x5111E)  # another SSRC for the other party
            at = micros + loop * span
            streams = (
                (6000, bytes(silent) + bytes([SILENCE]) * (len(packet) - 12)),
                (6002, bytes(header) + packet[12:]),
            )
            for port, payload in streams:
                frame = _frame(port, port, payload)
                records.append(
                    struct.pack("<IIII", at // 1_000_000, at % 1_000_000, len(frame),
                                len(frame)) + frame
                )  # fmt: skip
    out.write_bytes(b"".join(records))
    return len(packets) * loops
