"""The I/O edge for packets: pcap and pcapng files, a live interface (libpcap through
pcapy-ng, with a BPF filter), and the HEPv3 and SIPREC sockets. It decodes link, network
and transport layers (Ethernet, Linux cooked, raw IP, BSD loopback, VLAN tags, IPv4/IPv6,
IPv4 defragmentation, UDP, TCP reassembly) into an iterator of `core.Datagram`. This is the
only layer that opens capture files, interfaces or sockets.
"""
